"""FRAMI second round (issue #27): the statistics-pooling teacher, per-element inversion priors,
the inversion's learning-rate schedule, the invert stage's acceptance check and the students'
validation split.

- every variant's teacher is `stats_pool_net`; the hidden-state and contrastive terms read
  features that exist on its forward path, and its "after pooling" feature is concat(mean_t,
  std_t) of its "before pooling" one (NumPy), from which its logits follow (NumPy forward);
- TV / L2 priors per input element: hand-computed values, tiling invariance, and the config's
  weights giving round 1's objective on FSDD-sized inputs;
- the acceptance check on a tiny real chain (teacher -> inv_di -> di): threshold 0 accepts and
  the student records its validation accuracy; 1.01 rejects and the student refuses.
"""

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import frami
from kdjax.losses import l2_prior, total_variation
from kdjax.train import stage_list, stages, summary
from kdjax.train.forward import forward, resolve
from kdjax.train.invert import inversion_lr, target_accuracy
from kdjax.train.program import build_program

SR, C = 8000, 10
PAIRS = [(v, d) for v, ds in frami.VARIANTS.items() for d in ds]


def _mel_shape(p, b):
    return jax.eval_shape(p.frontends["mel"], jax.ShapeDtypeStruct((b, SR), jnp.float32)).shape


# ---------------------------------------------------------------------------------------------
# 1. The teacher: statistics pooling on its forward path


@pytest.mark.parametrize("variant,data", PAIRS)
def test_every_variant_has_the_stats_pool_teacher_and_the_old_one_is_an_argument(variant, data):
    c = frami.get_config(f"variant={variant},data={data}")
    for name, st in c.stages.items():
        refs = [st.models.teacher] if name == "teacher" else [st.teachers.t]
        for r in refs:
            assert r.model == "stats_pool_net", (name, r.model)
    old = frami.get_config(f"variant={variant},data={data},teacher_model=temporal_cnn")
    assert old.stages.teacher.models.teacher.model == old.stages.frami.teachers.t.model == "temporal_cnn"
    # the projection maps the student's frames to the teacher's frame width
    assert c.stages.frami.models.proj.kw.width == c.stages.teacher.models.teacher.kw.widths[-1]


def test_loss_inputs_exist_on_the_teachers_forward_path_and_stats_pool_the_frames():
    c = frami.get_config("variant=tiny,data=fsdd,student_mixup=0")
    p_inv = build_program(c.stages.inv_frami, C, SR)
    p_stu = build_program(c.stages.frami, C, SR)
    shape = _mel_shape(p_stu, 4)
    t = p_stu.teachers["t"]
    variables = jax.jit(lambda k: t.init(k, jnp.zeros(shape), train=False))(jax.random.key(0))
    # Non-trivial BatchNorm running statistics (init has mean 0, var 1): the NumPy forward below
    # must then use them as the model does.
    rs = np.random.default_rng(0)
    bs = jax.tree.map(lambda v: jnp.asarray(rs.uniform(0.5, 1.5, v.shape), jnp.float32),
                      variables["batch_stats"])
    variables = {"params": variables["params"], "batch_stats": bs}
    x = jnp.asarray(-68 + 25 * rs.standard_normal(shape), jnp.float32)
    batch = {"labels": jnp.eye(C)[jnp.arange(4)], "mask": jnp.ones(4), "features/mel": x}
    # the teacher's forward path as the stages run it (the inversion's program: teacher t only)
    ns, _ = jax.jit(lambda v, b: forward(p_inv, {"t": v}, b, jax.random.key(1), train=False,
                                         overrides={"features.mel": b["features/mel"]}))(variables, batch)
    # Every teacher feature a loss reads is on the forward path's namespace.
    reads = list(c.stages.frami.losses.hidden.inputs) + list(c.stages.frami.losses.hidden.kw_inputs.values())
    reads += list(c.stages.inv_frami.losses.cont.inputs[:1]) + [c.stages.inv_frami.invert.memory_bank.path]
    for path in reads:
        if path.startswith("teacher."):
            assert resolve(ns, path) is not None, path
    assert set(reads) >= {"teacher.t.feats.frames", "teacher.t.feats.stats"}
    # After pooling == concat(mean_t, std_t) of before pooling (NumPy, biased variance).
    frames = np.asarray(ns["teacher"]["t"]["feats"]["frames"], np.float64)
    stats = np.asarray(ns["teacher"]["t"]["feats"]["stats"], np.float64)
    assert frames.shape[:2] == (4, shape[1])  # frame-rate features [B, T, W] (no time stride)
    want = np.concatenate([frames.mean(1), np.sqrt(np.maximum(frames.var(1), 1e-8))], -1)
    np.testing.assert_allclose(stats, want, rtol=1e-5, atol=1e-6)
    # ... and the logits are a function of those statistics (statistics pooling is on the
    # classification path): the segment layers and head in NumPy (eval-mode BatchNorm).
    P, B = variables["params"], variables["batch_stats"]
    n_frame = len(frami.TEACHER_SPN_TINY["widths"])

    def dense(z, name):
        return z @ np.asarray(P[name]["kernel"], np.float64) + np.asarray(P[name]["bias"], np.float64)

    def bn(z, name):
        m, v = np.asarray(B[name]["mean"], np.float64), np.asarray(B[name]["var"], np.float64)
        return (z - m) / np.sqrt(v + 1e-5) * np.asarray(P[name]["scale"]) + np.asarray(P[name]["bias"])

    z = stats
    for j in range(2):
        name = f"segment{n_frame + 1 + j}"
        z = dense(z, name)
        if j == 0:
            np.testing.assert_allclose(np.asarray(ns["teacher"]["t"]["feats"]["embedding"]), z,
                                       rtol=1e-4, atol=1e-4)
        z = bn(np.maximum(z, 0), f"{name}_bn")
    np.testing.assert_allclose(np.asarray(ns["teacher"]["t"]["logits"]), dense(z, "head"), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# 3. Per-element TV / L2 priors


def test_total_variation_per_element_by_hand():
    x = np.array([[[0.0, 1.0], [3.0, 1.0], [3.0, 5.0]]], np.float32)  # [B=1, T=3, F=2]
    # time diffs: [3, 0], [0, 4]; freq diffs: 1, -2, 2; diagonals x[t+1,f+1]-x[t,f]: 1-0, 5-3;
    # anti-diagonals x[t+1,f]-x[t,f+1]: 3-1, 3-1.
    sq = [9 + 16, 1 + 4 + 4, 1 + 4, 4 + 4]
    n = 6
    np.testing.assert_allclose(total_variation(jnp.asarray(x)), [sum(math.sqrt(s) for s in sq)], rtol=1e-6)
    np.testing.assert_allclose(total_variation(jnp.asarray(x), per_element=True),
                               [sum(math.sqrt(s) for s in sq) / math.sqrt(n)], rtol=1e-6)
    ab = [3 + 4, 1 + 2 + 2, 1 + 2, 2 + 2]
    np.testing.assert_allclose(total_variation(jnp.asarray(x), norm="l1", per_element=True), [sum(ab) / n],
                               rtol=1e-6)
    np.testing.assert_allclose(l2_prior(jnp.asarray(x), per_element=True),
                               [math.sqrt((x**2).sum() / n)], rtol=1e-6)
    np.testing.assert_allclose(l2_prior(jnp.asarray(x), squared=True, per_element=True), [(x**2).sum() / n],
                               rtol=1e-6)


def test_per_element_priors_are_invariant_to_tiling_along_time():
    rs = np.random.default_rng(3)
    x = rs.normal(-60, 20, (2, 9, 7)).astype(np.float32)
    x[:, 0] = x[:, -1] = -100.0  # silent first and last frames: the tiled copies join smoothly
    x2 = np.concatenate([x, x], axis=1)  # [2, 18, 7]: twice the elements
    for norm in ("l2", "l1"):
        a = total_variation(jnp.asarray(x), norm=norm, per_element=True)
        b = total_variation(jnp.asarray(x2), norm=norm, per_element=True)
        np.testing.assert_allclose(b, a, rtol=1e-5)
    np.testing.assert_allclose(l2_prior(jnp.asarray(x2), per_element=True), l2_prior(jnp.asarray(x), per_element=True),
                               rtol=1e-6)
    # The sum scale is not: it grows with the size (sqrt(2) for the L2 norms).
    np.testing.assert_allclose(total_variation(jnp.asarray(x2)) / total_variation(jnp.asarray(x)), math.sqrt(2),
                               rtol=1e-5)


def test_config_priors_per_element_give_round_ones_objective_on_fsdd():
    rs = np.random.default_rng(4)
    x = jnp.asarray(rs.normal(-68, 25, (3, 101, 40)), jnp.float32)  # FSDD's log-mel [T, F]
    assert frami.FSDD_ELEMENTS == 101 * 40
    new = frami.get_config("variant=local,data=fsdd").stages.inv_di.losses
    old = frami.get_config("variant=local,data=fsdd,prior_scale=sum").stages.inv_di.losses
    assert new.tv.kw.per_element and new.l2.kw.per_element
    assert not old.tv.kw.per_element and not old.l2.kw.per_element
    np.testing.assert_allclose([old.tv.weight, old.l2.weight], [0.03, 1e-5], rtol=1e-12)  # round 1
    np.testing.assert_allclose(new.tv.weight, 0.03 * math.sqrt(4040), rtol=1e-12)
    np.testing.assert_allclose(new.tv.weight * total_variation(x, per_element=True),
                               old.tv.weight * total_variation(x), rtol=1e-5)
    np.testing.assert_allclose(new.l2.weight * l2_prior(x, per_element=True), old.l2.weight * l2_prior(x),
                               rtol=1e-5)
    # ESC-10's inputs are 7.9x larger: the per-element weight is the same, not rescaled.
    esc = frami.get_config("variant=local,data=esc10").stages.inv_di.losses
    assert esc.tv.weight == new.tv.weight and esc.l2.weight == new.l2.weight
    with pytest.raises(ValueError, match="prior_scale"):
        frami.get_config("variant=local,data=fsdd,prior_scale=mean")


# ---------------------------------------------------------------------------------------------
# 4. The inversion's learning-rate schedule


def test_inversion_lr_schedules_are_optax_schedules():
    base = dict(lr=0.5, steps=1000)
    assert inversion_lr(base) == 0.5
    sch = inversion_lr(dict(base, lr_schedule="warmup_cosine", warmup_steps=100))
    ref = optax.warmup_cosine_decay_schedule(0.0, 0.5, 100, 1000, end_value=0.0)
    for s in (0, 50, 100, 550, 999):
        np.testing.assert_allclose(float(sch(s)), float(ref(s)), rtol=1e-6)
    np.testing.assert_allclose(float(sch(100)), 0.5, rtol=1e-6)
    np.testing.assert_allclose(float(sch(550)), 0.25, rtol=1e-5)  # half-way through the cosine
    cos = inversion_lr(dict(base, lr_schedule="cosine"))
    np.testing.assert_allclose(float(cos(500)), 0.25, rtol=1e-5)
    with pytest.raises(ValueError, match="invert.lr_schedule"):
        inversion_lr(dict(base, lr_schedule="step"))
    with pytest.raises(ValueError, match="invert.warmup_steps"):
        inversion_lr(dict(base, lr_schedule="warmup_cosine", warmup_steps=1000))
    inv = frami.get_config("variant=local,data=fsdd").stages.inv_di.invert
    assert inv.lr_schedule == "constant" and inv.steps == frami.LOCAL_INV_STEPS  # the pilot's choice
    sch = frami.get_config("variant=local,data=fsdd,inv_schedule=warmup_cosine").stages.inv_frami.invert
    assert sch.lr_schedule == "warmup_cosine" and sch.warmup_steps == 100
    assert inv.accept_accuracy == 0.95 and inv.on_reject == "stop" and inv.accept_teacher == "t"
    # ADI's inversion has two frozen modules (the program lists the `di` student `s` first): the
    # check and the stored logits are the teacher's
    assert frami.get_config("variant=local,data=fsdd").stages.inv_adv.invert.accept_teacher == "t"


def test_target_accuracy_by_hand():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 1.0], [5.0, 0.0, 0.0]])
    labels = np.eye(3)[[0, 1, 1, 2]]
    assert target_accuracy(logits, labels) == 0.5


# ---------------------------------------------------------------------------------------------
# 5. The students' validation split


@pytest.mark.parametrize("data,val", [("fsdd", "validation"), ("sc12", "validation"), ("esc10", "validation_fold1")])
def test_local_students_are_validated_on_real_data_held_out_of_all_training(data, val):
    c = frami.get_config(f"variant=local,data={data}")
    students = ("di", "cont", "hidden", "frami", "real", "adv")
    for s in students:
        d = c.stages[s].data
        assert d.eval_split == val and d.test_split != val, s
        # one validation, at the last step: the kept parameters are the last ones
        assert c.stages[s].eval_every == c.stages[s].num_steps
    # the teacher (and the `real` arm) never trains on the validation clips
    assert c.stages.teacher.data.train_split == c.stages.real.data.train_split
    assert c.stages.teacher.data.train_split == {"fsdd": "train", "sc12": "train", "esc10": "fit_fold1"}[data]
    every = frami.get_config(f"variant=local,data={data},student_eval_every=50")
    assert all(every.stages[s].eval_every == 50 for s in students) and every.stages.teacher.eval_every == 200
    off = frami.get_config(f"variant=local,data={data},student_val=false")
    assert all(off.stages[s].data.eval_split == "" for s in students)


# ---------------------------------------------------------------------------------------------
# 2. The acceptance check, end to end on a tiny chain (real FSDD clips)


def test_acceptance_check_accepts_reports_and_refuses(tmp_path, data_dir, capsys):
    cfg = frami.get_config("variant=tiny,data=fsdd,seeds=1,stage=teacher+inv_di+di,student_mixup=0")
    runs = {name: (wd, c) for name, _, wd, c in stage_list.stage_runs(cfg, str(tmp_path))}
    for name in ("teacher", "inv_di"):
        stages.run_config(runs[name][1], runs[name][0])
    inv_wd, inv_cfg = runs["inv_di"]
    res = json.load(open(os.path.join(inv_wd, "result.json")))["summary"]
    # the measured accuracy is the stored teacher logits' argmax vs the targets
    with np.load(os.path.join(inv_wd, "synthetic", "shard_00000.npz")) as z:
        want = float(np.mean(z["teacher_logits"].argmax(-1) == z["labels"].argmax(-1)))
    assert res["teacher_accuracy_on_targets"] == pytest.approx(want)
    assert res["accepted"] is True and res["accept_accuracy"] == 0.0
    assert "accepted" in capsys.readouterr().out
    metrics = [json.loads(line) for line in open(os.path.join(inv_wd, "metrics.jsonl"))]
    assert any("invert/target_accuracy" in m for m in metrics)
    # the student trains on the accepted set and records its real validation accuracy
    stu_wd, stu_cfg = runs["di"]
    stages.run_config(stu_cfg, stu_wd)
    r = json.load(open(os.path.join(stu_wd, "result.json")))
    acc = r["models"]["student"]["validation"]["accuracy"]
    assert 0.0 <= acc <= 1.0 and r["models"]["student"]["test"]["accuracy"] is not None
    # Threshold 1.01: the same set (resumed: no shard is redone) is rejected, loudly.
    with inv_cfg.unlocked():
        inv_cfg.invert.accept_accuracy = 1.01
    stages.run_config(inv_cfg, inv_wd)
    res = json.load(open(os.path.join(inv_wd, "result.json")))["summary"]
    assert res["accepted"] is False and res["teacher_accuracy_on_targets"] == pytest.approx(want)
    out = capsys.readouterr().out
    assert "REJECTED synthetic set" in out and f"{want:.4f}" in out
    meta = json.load(open(os.path.join(inv_wd, "synthetic", "meta.json")))
    assert meta["acceptance"]["status"] == "rejected"
    runs_summary = summary.summarize(cfg, str(tmp_path))["stages"]["inv_di"]["runs"]
    assert runs_summary[0]["accepted"] is False and runs_summary[0]["accept_accuracy"] == 1.01
    # ... and the dependent student refuses it, naming the set and the measured accuracy.
    import shutil

    shutil.rmtree(stu_wd)
    with pytest.raises(ValueError, match=rf"{inv_wd}/synthetic.*rejected.*{want:.4f} < accept_accuracy 1.01"):
        stages.run_config(stu_cfg, stu_wd)
    # on_reject="warn": reported, but readable
    with inv_cfg.unlocked():
        inv_cfg.invert.on_reject = "warn"
    stages.run_config(inv_cfg, inv_wd)
    from kdjax.data.synthetic import source

    assert len(source(root=os.path.join(inv_wd, "synthetic"))) == inv_cfg.invert.batch_size
    # a report can read a rejected set explicitly
    with inv_cfg.unlocked():
        inv_cfg.invert.on_reject = "stop"
    stages.run_config(inv_cfg, inv_wd)
    with pytest.raises(ValueError, match="rejected"):
        source(root=os.path.join(inv_wd, "synthetic"))
    assert len(source(root=os.path.join(inv_wd, "synthetic"), check_acceptance=False)) == inv_cfg.invert.batch_size
