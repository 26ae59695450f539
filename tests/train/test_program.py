"""The recipe platform: [K, B] terms, scheduled weights, training-only modules, the invert and
cache stages, joined per-clip arrays, stage references, and the defects they fixed."""

import copy
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kdjax.train import loop
from kdjax.train.checkpoint import Checkpointer, load_best_variables
from kdjax.train.forward import forward, init_variables, weighted_loss
from kdjax.train.program import LossTerm, build_program
from kdjax.train.setup import TrainingDivergedError, check_finite, split_sources, write_result
from tests.train.conftest import small

TINY = dict(stem_width=8, widths=(8, 8), strides=(2, 2), stem_stride=2)


def _leaves_equal(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb, strict=True))


def _tiny(stage="student", **over):
    c = small(stage, **over)
    with c.unlocked():
        for m in list(c.models.values()) + list(c.teachers.values()):
            m.kw = dict(TINY)
    return c


# --------------------------------------------------------------------------------------------
# Loss terms.


def test_k_by_b_term_is_masked_per_peer_and_summed():
    z = jax.random.normal(jax.random.key(0), (2, 4, 3)) * 2
    ns = {"peers": {"logits": z}}
    mask = jnp.array([1.0, 1.0, 1.0, 0.0])
    t = LossTerm.from_config("dml", dict(fn="mutual_kl", weight=0.5, inputs=["peers.logits"]))
    total, m = weighted_loss((t,), ns, mask)
    p = np.asarray(jax.nn.softmax(z, -1), np.float64)
    kl = lambda a, b: (a * (np.log(a) - np.log(b))).sum(-1)  # noqa: E731  KL(a || b) per example
    rows = [kl(p[1], p[0])[:3].mean(), kl(p[0], p[1])[:3].mean()]  # peer i learns from peer j != i
    np.testing.assert_allclose([float(m["loss/dml/0"]), float(m["loss/dml/1"])], rows, rtol=1e-5)
    np.testing.assert_allclose(float(m["loss/dml"]), sum(rows), rtol=1e-5)
    np.testing.assert_allclose(float(total), 0.5 * sum(rows), rtol=1e-5)


def test_scheduled_weight_follows_the_optax_schedule():
    t = LossTerm.from_config("kd", dict(fn="l2_prior", inputs=["x"], weight=dict(
        schedule="linear_schedule", kw=dict(init_value=0.0, end_value=1.0, transition_steps=10))))
    x = jnp.ones((2, 3, 4))
    for step, w in ((0, 0.0), (5, 0.5), (20, 1.0)):
        total, m = weighted_loss((t,), {"x": x}, jnp.ones(2), step)
        np.testing.assert_allclose(float(m["weight/kd"]), w, atol=1e-6)
        np.testing.assert_allclose(float(total), w * float(m["loss/kd"]), rtol=1e-6)
    with pytest.raises(ValueError, match=r"losses.kd.weight="):
        LossTerm.from_config("kd", dict(fn="l2_prior", inputs=["x"], weight=dict(schedule="nope")))


# --------------------------------------------------------------------------------------------
# Building programs.


def test_program_order_inputs_and_errors():
    c = _tiny("student")
    with c.unlocked():
        c.models.head = dict(model="temporal_cnn", kw=TINY, input="student.feats.frames", deploy=False)
    p = build_program(c, 10, 8000)
    assert [n.name for n in p.nodes] == ["student", "head"] and p.deployed == ("student",)
    bad = copy.deepcopy(c)
    with bad.unlocked():
        bad.models.other = dict(model="temporal_cnn", kw=TINY, input="head.feats.frames")
    with pytest.raises(ValueError, match="deployed.*training-only models.head"):
        build_program(bad, 10, 8000)
    with bad.unlocked():
        bad.models.other = dict(model="temporal_cnn", kw=TINY, input="nothing.here")
    with pytest.raises(ValueError, match="other.input='nothing.here'"):
        build_program(bad, 10, 8000)
    with bad.unlocked():
        bad.models.other = dict(model="temporal_cnn", kw=TINY, frontend=c.models.student.frontend, inptu="x")
    with pytest.raises(ValueError, match=r"models.other: unknown field\(s\) \['inptu'\]"):
        build_program(bad, 10, 8000)


def test_init_variables_keys_each_module_by_its_program_position():
    """init_variables walks forward's namespace: a training-only head reading the student's
    embedding is initialised on the student's initial outputs, each module with
    fold_in(rng, its index in program.nodes), the frozen teacher with the given variables."""
    c = _tiny("kd")
    with c.unlocked():
        c.models.head = dict(model="linear_probe", input="student.feats.embedding", deploy=False)
    p = build_program(c, 10, 8000)
    assert [n.path for n in p.nodes] == ["student", "head", "teacher.teacher"]
    x = {"audio": np.zeros((2, 8000), np.float32)}
    feats = p.features(x["audio"])
    t_mod = p.teachers["teacher"]
    teachers = {"teacher": t_mod.init(jax.random.key(9), feats["teacher_teacher"], train=False)}
    rng = jax.random.key(3)
    params, stats = init_variables(p, rng, 8000, teachers)
    s_mod, h_mod = p.models["student"], p.models["head"]
    s_ref = s_mod.init(jax.random.fold_in(rng, 0), feats["student"], train=False)
    assert _leaves_equal(params["student"], s_ref["params"])
    assert _leaves_equal(stats["student"], s_ref["batch_stats"])
    _, s_feats = s_mod.apply(s_ref, feats["student"], train=False)
    h_ref = h_mod.init(jax.random.fold_in(rng, 1), s_feats["embedding"], train=False)
    assert _leaves_equal(params["head"], h_ref["params"])
    assert "teacher" not in params
    with pytest.raises(KeyError, match="teacher"):  # a head on a teacher's outputs needs its variables
        c2 = copy.deepcopy(c)
        with c2.unlocked():
            c2.models.head.input = "teacher.teacher.feats.embedding"
        init_variables(build_program(c2, 10, 8000), rng, 8000)


def test_check_finite_names_the_step_and_what_is_kept(tmp_path):
    kept = []
    m = check_finite({"loss": jnp.float32(1.5), "loss/ce": jnp.float32(1.5)}, what="loss", at="step 3",
                     kept=lambda: kept.append(1) or "x")
    assert m == {"loss": 1.5, "loss/ce": 1.5} and not kept  # `kept` is only asked for on a NaN
    with pytest.raises(TrainingDivergedError) as e:
        check_finite({"loss": jnp.float32(np.nan), "loss/kd": jnp.float32(np.inf), "grad_norm": 1.0},
                     what="invert: objective", at="batch 1 step 0", kept=lambda: "2 shards kept")
    assert str(e.value) == ("invert: objective is nan at batch 1 step 0 (terms {'loss': nan, 'loss/kd': inf}); "
                            "stopped, 2 shards kept")
    write_result(str(tmp_path), {"a": [1, 2]})
    assert json.loads((tmp_path / "result.json").read_text()) == {"a": [1, 2]}
    assert sorted(q.name for q in tmp_path.iterdir()) == ["result.json"]  # no temporary file left


def test_frontend_preset_is_checked_against_the_sample_rate():
    """Defect 2: a front-end given as {'preset': ...} skipped the sample-rate check."""
    c = _tiny("student")
    with c.unlocked():
        c.models.student.frontend = {"preset": "logmel40_8k"}
    assert build_program(c, 10, 8000).frontends  # the preset's own rate: fine
    with pytest.raises(ValueError, match="student.frontend.sample_rate=8000 but the data is 16000 Hz"):
        build_program(c, 10, 16000)


def test_bn_moments_equal_a_manual_computation():
    c = _tiny("student")
    with c.unlocked():
        c.models.student.capture_bn = True
    p = build_program(c, 10, 8000)
    params, stats = init_variables(p, jax.random.key(0), 8000)
    x = jax.random.normal(jax.random.key(1), (4, 8000)) * 0.1
    v = {"student": {"params": params["student"], "batch_stats": stats["student"]}}
    ns, _ = forward(p, v, {"audio": x}, jax.random.key(2), train=False)
    bn = ns["student"]["bn"]
    assert list(bn)[0] == "stem_bn" and len(bn) == 1 + 2 * 2 + 2  # stem + 2 blocks x (bn1, bn2) + 2 projections
    # The stem BN's input is the stem conv's output: recompute it and its moments.
    feats = p.features(x)["student"]
    from kdjax.models.layers import Conv1D

    h = Conv1D(8, 3, 2).apply({"params": params["student"]["stem"]}, feats)
    mu, var, rmean, rvar = bn["stem_bn"]
    np.testing.assert_allclose(mu, h.mean((0, 1)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(var, h.var((0, 1)), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(rmean, stats["student"]["stem_bn"]["mean"])
    np.testing.assert_array_equal(rvar, stats["student"]["stem_bn"]["var"])


# --------------------------------------------------------------------------------------------
# End to end on real FSDD clips.


def test_training_only_head_is_trained_but_not_deployed(tmp_path, data_dir):
    c = _tiny("student")
    with c.unlocked():
        c.models.head = dict(model="temporal_cnn", kw=dict(TINY, strides=(1, 1), stem_stride=1),
                             input="student.feats.frames", deploy=False)
        c.losses.head_ce = dict(fn="softmax_xent", weight=0.5, inputs=["head.logits", "batch.labels"])
    r = loop.train_and_evaluate(c, str(tmp_path / "head"))
    from kdjax.models import count_params

    plain = build_program(_tiny("student"), 10, 8000)  # the same student without the head
    n_plain = count_params(init_variables(plain, jax.random.key(0), 8000)[0]["student"])
    assert set(r["params"]) == {"student"} and r["params"]["student"] == n_plain
    assert r["train_only_params"]["head"] > 0 and set(r["models"]) == {"student"}
    rows = [json.loads(x) for x in (tmp_path / "head" / "metrics.jsonl").read_text().splitlines()]
    last = [x for x in rows if "train/loss/head_ce" in x][-1]
    assert np.isclose(last["train/loss"], last["train/loss/ce"] + 0.5 * last["train/loss/head_ce"], rtol=1e-5)
    # The head learned: its parameters moved away from their initial values.
    s = Checkpointer(tmp_path / "head" / "ckpt")
    import orbax.checkpoint as ocp

    st = s.manager.restore(s.latest_step(), args=ocp.args.Composite(state=ocp.args.StandardRestore())).state
    p0, _ = init_variables(build_program(c, 10, 8000), jax.random.fold_in(jax.random.key(c.seed), 1), 8000)
    assert not _leaves_equal(st["params"]["head"], p0["head"])
    s.close()


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory, data_dir):
    """A tiny teacher without a validation split (defect 1's setting), trained for 4 steps."""
    wd = tmp_path_factory.mktemp("prog") / "teacher"
    c = _tiny("teacher")
    with c.unlocked():
        c.data.eval_split = ""
    loop.train_and_evaluate(c, str(wd))
    return wd


def test_teacher_without_validation_saves_its_last_parameters(tiny_teacher, tmp_path):
    """Defect 1: without a validation split best.step stayed -1 and KD used the untrained teacher."""
    import orbax.checkpoint as ocp

    ck = Checkpointer(tiny_teacher / "ckpt")
    r = ck.manager.restore(4, args=ocp.args.Composite(state=ocp.args.StandardRestore(),
                                                      best=ocp.args.StandardRestore()))
    ck.close()
    assert int(r.best["teacher"]["step"]) == 4
    v = load_best_variables(tiny_teacher, "teacher")
    assert _leaves_equal(v["params"], r.state["params"]["teacher"])
    # A checkpoint whose best model was never evaluated is refused.
    bad = Checkpointer(tmp_path / "bad" / "ckpt")
    best = {"teacher": dict(r.best["teacher"], step=np.int32(-1))}
    bad.save(1, r.state, best, {"step": 1})
    bad.wait()
    bad.close()
    with pytest.raises(ValueError, match="never evaluated"):
        load_best_variables(tmp_path / "bad", "teacher")


def _invert_cfg(teacher_dir, **inv):
    c = _tiny("teacher")
    fe = dict(c.models.teacher.frontend)
    with c.unlocked():
        c.kind = "invert"
        c.frontends = {"mel": fe}
        c.teachers = {"t": dict(model="temporal_cnn", kw=TINY, frontend="mel", checkpoint=str(teacher_dir),
                                checkpoint_model="teacher", capture_bn=True)}
        c.models = {}
        c.invert = dict(feature="mel", num_batches=2, batch_size=8, steps=8, lr=0.1, init_mean=-40.0,
                        init_std=10.0, targets="balanced", jitter=2) | inv
        c.losses = {"ce": dict(fn="softmax_xent", inputs=["teacher.t.logits", "batch.labels"]),
                    "bn": dict(fn="bn_statistics_loss", weight=0.01, inputs=["teacher.t.bn"]),
                    "tv": dict(fn="total_variation", weight=1e-4, inputs=["features.mel"])}
    return c


def test_invert_stage_lowers_its_objective_and_shards_round_trip(tiny_teacher, tmp_path):
    from kdjax.data import get_source
    from kdjax.train.invert import inversion_objective
    from kdjax.train.stages import run_config

    before = load_best_variables(tiny_teacher, "teacher")
    c = _invert_cfg(tiny_teacher, clip=[-60.0, -20.0])  # init N(-40, 10^2) reaches past both ends
    r = run_config(c, str(tmp_path / "inv"))["summary"]
    assert r["num_samples"] == 16 and r["loss_last"] < r["loss_first"]
    assert _leaves_equal(before, load_best_variables(tiny_teacher, "teacher"))
    src = get_source("synthetic", "train", root=str(tmp_path / "inv" / "synthetic"))
    assert len(src) == 16 and src.num_classes == 10 and src.sample_rate == 8000
    ex = src[3]
    assert ex["features/mel"].shape == tuple(r["shape"][1:]) and ex["labels"].sum() == 1
    assert src.arrays["features/mel"].min() == -60.0 and src.arrays["features/mel"].max() == -20.0  # clamped
    assert np.bincount(np.argmax(src.arrays["labels"], -1), minlength=10).max() <= 2  # balanced targets
    # Gradients reach the inputs, through the frozen teacher.
    p = build_program(c, 10, 8000)
    t = jax.device_put({"t": before})
    x = jnp.asarray(src.arrays["features/mel"][:8])
    g = jax.jit(jax.grad(lambda x: inversion_objective(p, "mel", t, x, jnp.asarray(src.arrays["labels"][:8]),
                                                       jax.random.key(0))[0]))(x)  # jit: one compile, not op by op
    assert g.shape == x.shape and np.isfinite(g).all() and float(jnp.abs(g).max()) > 0
    # A student trains on the synthetic shards only and is evaluated on real audio.
    s = _tiny("kd")
    with s.unlocked():
        s.frontends = {"mel": dict(c.frontends.mel)}
        s.models.student = dict(model="temporal_cnn", kw=TINY, frontend="mel")
        s.teachers = {"t": dict(model="temporal_cnn", kw=TINY, frontend="mel", checkpoint=str(tiny_teacher),
                                checkpoint_model="teacher")}
        s.losses = {"kd": dict(fn="kd_kl", kw=dict(temperature=4.0), inputs=["student.logits", "teacher.t.logits"])}
        s.data.train_source = dict(name="synthetic", kw=dict(root=str(tmp_path / "inv" / "synthetic")))
        s.mixup_alpha = 0.0
    res = loop.train_and_evaluate(s, str(tmp_path / "student"))
    assert np.array(res["models"]["student"]["test"]["confusion_matrix"]).sum() == 60  # real test clips


def test_invert_nan_stops_with_one_line_and_keeps_shards(tiny_teacher, tmp_path):

    from kdjax.train.stages import run_config

    wd = tmp_path / "inv"
    run_config(_invert_cfg(tiny_teacher, num_batches=1, steps=2), str(wd))
    shard0 = (wd / "synthetic" / "shard_00000.npz").read_bytes()
    with pytest.raises(TrainingDivergedError) as e:
        run_config(_invert_cfg(tiny_teacher, num_batches=2, steps=2, init_mean=float("nan")), str(wd))
    assert "batch 1 step 0" in str(e.value) and "\n" not in str(e.value)
    assert (wd / "synthetic" / "shard_00000.npz").read_bytes() == shard0
    assert not (wd / "synthetic" / "shard_00001.npz").exists()


def rms_extractor(audio, sample_rate, *, scale=1.0):
    """A stand-in external extractor (NumPy, outside JAX): per-clip RMS `[B, 1]`."""
    assert sample_rate == 8000
    return {"rms": scale * np.sqrt((audio.astype(np.float64) ** 2).mean(-1, keepdims=True))}


def test_cache_stage_stores_arrays_by_clip_index_and_join_feeds_them(tiny_teacher, tmp_path):
    from kdjax.data import pipeline
    from kdjax.train.stages import run_config

    c = _tiny("teacher")
    fe = dict(c.models.teacher.frontend)
    with c.unlocked():
        c.kind = "cache"
        c.models = {}
        c.teachers = {"t": dict(model="temporal_cnn", kw=TINY, frontend=fe, checkpoint=str(tiny_teacher),
                                checkpoint_model="teacher")}
        c.cache = dict(outputs={"logits": "teacher.t.logits", "rms": "extractor.rms"},
                       extractor="tests.train.test_program:rms_extractor", extractor_kw=dict(scale=2.0),
                       splits=["train", "test"])
    r = run_config(c, str(tmp_path / "cache"))
    srcs = split_sources(c, str(tmp_path / "cache"))
    logits = np.load(tmp_path / "cache" / "arrays" / "test" / "logits.npy")
    assert logits.shape == (len(srcs["test"]), 10) == tuple(r["splits"]["test"]["shapes"]["logits"])
    # Rows are clips by source index: recompute a few clips freshly.
    p = build_program(c, 10, 8000)
    t = load_best_variables(tiny_teacher, "teacher")
    for i in (0, 7, len(srcs["test"]) - 1):
        ex = pipeline._crop(8000, "start")(srcs["test"][i], None)
        ns, _ = forward(p, {"t": t}, {"audio": ex["audio"][None]}, jax.random.key(0), train=False)
        np.testing.assert_allclose(logits[i], ns["teacher"]["t"]["logits"][0], rtol=1e-4, atol=1e-4)
        rms = np.load(tmp_path / "cache" / "arrays" / "test" / "rms.npy")[i]
        np.testing.assert_allclose(rms, 2 * np.sqrt((ex["audio"].astype(np.float64) ** 2).mean()), rtol=1e-5)
    # A train stage joins them as batch.<key>: KD from the cached logits.
    s = _tiny("student")
    with s.unlocked():
        s.data.join = {"tlogits": str(tmp_path / "cache" / "arrays" / "{split}" / "logits.npy")}
        s.data.train_crop = "start"
        s.data.eval_split = ""
        s.mixup_alpha = 0.0
        s.losses.kd = dict(fn="kd_kl", kw=dict(temperature=2.0), inputs=["student.logits", "batch.tlogits"])
    joined = split_sources(s, str(tmp_path))["test"]
    np.testing.assert_array_equal(joined[5]["tlogits"], logits[5])
    res = loop.train_and_evaluate(s, str(tmp_path / "kd"))
    assert np.isfinite(res["models"]["student"]["test"]["accuracy"])
    # Cached arrays with mixup or random crops would silently misalign: rejected.
    for field, value, msg in (("mixup_alpha", 0.4, "mixup_alpha=0.4"), ("train_crop", "random", "train_crop='random'")):
        bad = copy.deepcopy(s)
        with bad.unlocked():
            if field == "mixup_alpha":
                bad.mixup_alpha = value
            else:
                bad.data.train_crop = value
        with pytest.raises(ValueError, match=msg):
            split_sources(bad, str(tmp_path))


def test_stage_references_resolve_to_run_folders(tmp_path):
    import ml_collections

    from kdjax.train.stage_list import stage_runs

    cfg = ml_collections.ConfigDict({
        "run": "teacher,kd", "seeds": 2,
        "stages": {"teacher": {"seed": 0, "repeat": False},
                   "kd": {"seed": 0, "teachers": {"t": {"checkpoint": "teacher:teacher"}},
                          "data": {"join": {"e": "{stage:teacher}/arrays/{split}/e.npy"}}}}})
    cfg.lock()  # as absl's config flag hands it over: checkpoint_model is a new field
    runs = stage_runs(cfg, str(tmp_path))
    _, k, wd, c = runs[2]
    assert k == 1 and wd.endswith("kd/seed1")
    assert c.teachers.t.checkpoint == str(tmp_path / "teacher") and c.teachers.t.checkpoint_model == "teacher"
    assert c.data.join.e == f"{tmp_path / 'teacher'}/arrays/{{split}}/e.npy"
    # Folds: every repeated stage runs per fold, "{fold}" substituted, references per fold.
    with cfg.unlocked():
        cfg.folds = [2, 5]
        cfg.stages.teacher.repeat = True
        cfg.stages.kd.data.test_split = "test_fold{fold}"
    runs = stage_runs(cfg, str(tmp_path))
    assert [r[2][len(str(tmp_path)) + 1:] for r in runs] == ["teacher/fold2", "teacher/fold5", "kd/fold2", "kd/fold5"]
    assert runs[3][3].data.test_split == "test_fold5" and runs[3][3].seed == 1
    assert runs[3][3].teachers.t.checkpoint == str(tmp_path / "teacher" / "fold5")
    with cfg.unlocked():
        cfg.stages.kd.teachers.t.checkpoint = "nope:teacher"
    with pytest.raises(ValueError, match="refers to stage 'nope'"):
        stage_runs(cfg, str(tmp_path))


def test_paired_difference_matches_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    from kdjax.train.stats import paired_difference, t975

    a, b = [0.81, 0.85, 0.79, 0.88, 0.83], [0.80, 0.82, 0.80, 0.84, 0.80]
    d = paired_difference(a, b)
    diff = np.subtract(a, b)
    lo, hi = scipy_stats.t.interval(0.95, len(diff) - 1, loc=diff.mean(), scale=scipy_stats.sem(diff))
    np.testing.assert_allclose([d["ci95_low"], d["ci95_high"]], [lo, hi], rtol=1e-3)
    assert d["significant"] == (lo > 0 or hi < 0)
    for df in (1, 2, 4, 9, 30):
        assert abs(t975(df) - scipy_stats.t.ppf(0.975, df)) < 1e-3
    with pytest.raises(ValueError):
        paired_difference([1, 2], [1])


def test_invert_two_views_and_memory_bank_feed_the_contrastive_term(tiny_teacher, tmp_path):
    """The bank holds earlier batches' final features: at batch 0 it is empty (same loss as
    without a bank), at batch 1 its rows are extra negatives (a strictly larger InfoNCE)."""
    from kdjax.train.stages import run_config

    def run(size, wd):
        c = _invert_cfg(tiny_teacher, num_batches=2, steps=2, views=2,
                        memory_bank=dict(path="teacher.t.feats.embedding", size=size))
        with c.unlocked():
            c.losses.cont = dict(fn="feature_invariant_contrastive", kw=dict(temperature=0.5),
                                 inputs=["teacher.t.feats.embedding", "view2.teacher.t.feats.embedding"],
                                 **({"kw_inputs": {"memory_bank": "batch.memory_bank"}} if size else {}))
        run_config(c, str(wd))
        rows = [json.loads(x) for x in (wd / "metrics.jsonl").read_text().splitlines()]
        return {r["step"]: r["invert/loss/cont"] for r in rows}

    plain, banked = run(0, tmp_path / "plain"), run(8, tmp_path / "bank")
    assert np.isclose(banked[1], plain[1], rtol=1e-6)  # batch 0, step 0: empty bank
    assert banked[3] > plain[3] + 1e-3  # batch 1, step 0: 8 extra negatives


def test_sigterm_during_the_final_checkpoint_wait_is_not_lost(tmp_path, data_dir, monkeypatch):
    """A SIGTERM that lands after the last step's check used to be dropped (the next staged
    run started); now the run stops with Preempted and a rerun finishes it from the checkpoint."""
    import os
    import signal

    from kdjax.train.loop import Preempted

    c = _tiny("student", steps=2)
    wait = Checkpointer.wait
    calls = {"n": 0}

    def wait_then_sigterm(self):
        wait(self)
        calls["n"] += 1
        if calls["n"] == 1:  # the wait after the loop's last step
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(Checkpointer, "wait", wait_then_sigterm)
    with pytest.raises(Preempted):
        loop.train_and_evaluate(c, str(tmp_path / "run"))
    assert not (tmp_path / "run" / "result.json").exists()
    monkeypatch.setattr(Checkpointer, "wait", wait)
    r = loop.train_and_evaluate(c, str(tmp_path / "run"))
    assert r["models"]["student"]["best_step"] == 2 and (tmp_path / "run" / "result.json").exists()
