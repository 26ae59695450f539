"""The Temporal KD recipe (configs/temporal_kd.py) in the real train step, against NumPy.

The recipe's own stage configs are built into a Program. Checked: the attention-KD term the step
reports equals a NumPy rollout + class-token row + linear interpolation + KL on the same
forward pass (live teacher), and the cached target path gives the same number; the head is
trained (it gets gradients, the student gets the KD gradient through its frames) but is not
part of the deployed student (eval logits ignore it, its parameters are not counted); the
recipe's config errors. The end-to-end tiny run (teacher -> rollout cache -> students) is
tests/test_configs.py's.
"""

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import temporal_kd
from kdjax.models import count_params
from kdjax.train import program
from kdjax.train.forward import forward, init_variables, weighted_loss
from kdjax.train.setup import make_optimizer
from kdjax.train.state import TrainState
from kdjax.train.step import eval_logits, train_step
from tests.losses import _ref
from tests.train._step import step_namespace

B, T_IN, F, C = 4, 50, 40, 12


def _np_kl_target(attn, t_student):
    r = _ref.rollout(np.asarray(attn, np.float64))[:, 0, 1:]
    r = r / r.sum(-1, keepdims=True)
    t = _ref.interp_linear(r[:, :, None], t_student)[:, :, 0]
    return t / t.sum(-1, keepdims=True)


def _np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _setup(student="temporal_cnn", lam=0.5, target="live", extra="", arm=""):
    cfg = temporal_kd.get_config(f"variant=tiny,target={target}{extra}")
    c = copy.deepcopy(cfg.stages[f"{student}{arm}_{temporal_kd.lam_code(lam)}"])
    prog = program.build_program(c, C, 16000)
    rng = np.random.default_rng(0)
    batch = {"features/student": rng.normal(size=(B, T_IN, F)).astype(np.float32),
             "labels": np.eye(C, dtype=np.float32)[rng.integers(0, C, B)],
             "mask": np.array([1, 1, 1, 0], np.float32)}
    teachers = {}
    if target == "cached":  # the cache stage's per-clip target, joined as batch.rollout
        r = rng.random((B, 13)) + 0.1
        batch["rollout"] = (r / r.sum(-1, keepdims=True)).astype(np.float32)
    if "teacher" in prog.teachers:
        batch["features/teacher_teacher"] = batch["features/student"]
        init = jax.jit(lambda r, x: prog.teachers["teacher"].init(r, x, train=False))  # eager init: ~10x slower
        teachers = {"teacher": init(jax.random.key(7), batch["features/teacher_teacher"])}
    params, stats = init_variables(prog, jax.random.key(1), 16000, teachers, batch)
    tx, _ = make_optimizer(c)
    state = TrainState.create(params=params, batch_stats=stats, tx=tx)
    return c, prog, state, teachers, batch


def _namespace_jit(prog, state, teachers, batch):
    return jax.jit(lambda s, t, b: step_namespace(prog, s, t, b))(state, teachers, batch)


def test_attention_kd_term_in_the_step_matches_numpy_live_and_cached():
    c, prog, state, teachers, batch = _setup()
    assert dict(c.models.head)["deploy"] is False and c.losses.tkd.weight == 0.5
    _, metrics = jax.jit(lambda s, t, b, r: train_step(s, t, b, r, program=prog))(
        state, teachers, batch, jax.random.key(3))
    ns = _namespace_jit(prog, state, teachers, batch)
    scores = np.asarray(ns["head"]["logits"], np.float64)  # [B, T_student]
    attn = np.asarray(ns["teacher"]["teacher"]["feats"]["attention"])  # [L, B, H, N, N]
    assert attn.shape[-1] - 1 != scores.shape[1]  # interpolation is exercised
    tgt = _np_kl_target(attn, scores.shape[1])
    kl = (tgt * (np.log(tgt) - _np_log_softmax(scores))).sum(-1)
    m = batch["mask"]
    want = float((kl * m).sum() / m.sum())
    np.testing.assert_allclose(float(metrics["loss/tkd"]), want, rtol=2e-4)
    ce = -(batch["labels"] * _np_log_softmax(np.asarray(ns["student"]["logits"], np.float64))).sum(-1)
    np.testing.assert_allclose(float(metrics["loss"]), float((ce * m).sum() / m.sum()) + 0.5 * want, rtol=2e-4)

    # the cached path: the target stored by the `rollout` cache stage, joined as batch.rollout
    c2 = temporal_kd.get_config("variant=tiny,target=cached").stages.temporal_cnn_l050
    prog2 = program.build_program(c2, C, 16000)
    assert c2.losses.tkd.inputs == ["head.logits", "batch.rollout"] and not prog2.teachers
    cached = _ref.rollout(np.asarray(attn, np.float64))[:, 0, 1:]
    ns2 = dict(ns, batch=dict(ns["batch"], rollout=jnp.asarray(cached / cached.sum(-1, keepdims=True),
                                                               jnp.float32)))
    _, got = jax.jit(lambda n: weighted_loss(prog2.terms, n, jnp.asarray(m)))(ns2)
    np.testing.assert_allclose(float(got["loss/tkd"]), want, rtol=2e-4)


def test_head_is_trained_but_not_deployed():
    c, prog, state, teachers, batch = _setup("lstm_p", target="cached")
    assert prog.deployed == ("student",) and "head" in prog.models

    def grad_of(prog_):
        return jax.jit(jax.grad(lambda p: weighted_loss(
            prog_.terms, step_namespace(prog_, state.replace(params=p), teachers, batch),
            jnp.asarray(batch["mask"]))[0]))(state.params)

    grads = grad_of(prog)
    assert float(jnp.abs(grads["head"]["query"]).sum()) > 0  # the head learns from the KD term
    # the student also receives the KD gradient through its frames (CE alone gives another one)
    g_ce = grad_of(dataclass_replace_terms(prog, keep=("task",)))
    diff = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), grads["student"], g_ce["student"])
    assert max(jax.tree.leaves(diff)) > 0
    # eval logits do not depend on the head; the head is not in the student's parameter count
    audio = np.random.default_rng(1).normal(size=(B, 16000 * 2)).astype(np.float32) * 0.1
    ev = jax.jit(lambda p, s, a: eval_logits(p, s, a, program=prog))
    z = ev(state.params, state.batch_stats, audio)
    other = dict(state.params, head=jax.tree.map(lambda x: x + 100.0, state.params["head"]))
    z2 = ev(other, state.batch_stats, audio)
    assert set(z) == {"student"}
    np.testing.assert_array_equal(np.asarray(z["student"]), np.asarray(z2["student"]))
    _, prog0, state0, _, _ = _setup("lstm_p", lam=0.0, target="cached")
    assert "head" not in prog0.models
    assert count_params(state0.params["student"]) == count_params(state.params["student"])


def dataclass_replace_terms(prog, keep):
    import dataclasses

    return dataclasses.replace(prog, terms=tuple(t for t in prog.terms if t.name in keep))


def test_config_arguments_and_errors():
    cfg = temporal_kd.get_config("variant=local,data=sc4,students=crnn+lstm_p,lambdas=0+0.25")
    assert cfg.run == "teacher,rollout,lstm_p_l000,lstm_p_l025,crnn_l000,crnn_l025"
    assert cfg.stages.crnn_l025.baseline == "crnn_l000" and cfg.stages.crnn_l025.data.clip_seconds == 4.0
    assert cfg.stages.rollout.kind == "cache" and cfg.stages.rollout.cache.outputs.rollout.fn == "rollout_frame_distribution"
    one_minus = temporal_kd.get_config("variant=local,task_scale=one_minus")
    assert one_minus.stages.crnn_l025.losses.task.weight == pytest.approx(0.75)
    paper = temporal_kd.get_config("variant=paper,data=sc8")
    t = paper.stages.teacher.models.teacher
    assert t.model == "wav2vec2" and t.input == "batch.audio" and not paper.runnable_here
    # wav2vec 2.0 has no class token: the paper's "first token" is its first frame, whole row
    kw = paper.stages.crnn_l010.losses.tkd.kw
    assert kw.cls_index == 0 and kw.drop_query is False and kw.head_fusion == "mean"
    mean = temporal_kd.get_config("variant=paper,data=sc8,rollout_row=mean")
    assert mean.stages.crnn_l010.losses.tkd.kw.cls_index is None
    from kdjax.train import metrics

    fsd = temporal_kd.get_config("variant=paper,data=fsd50k")
    assert callable(getattr(metrics, fsd.stages.crnn_l050.eval_metric))  # the loop looks it up by name
    assert fsd.stages.crnn_l050.losses.task.fn == "sigmoid_xent" and fsd.stages.crnn_l050.data.train_crop == "random"
    for arg, msg in [("data=sc8", "data='sc8'"), ("students=resnet", "resnet"), ("head=mlp", "head='mlp'"),
                     ("target=disk", "target='disk'"), ("rollout_row=last", "rollout_row='last'"),
                     ("task_scale=one_minus,lambdas=0+1", "0 <= lambda < 1")]:
        with pytest.raises(ValueError, match=msg):
            temporal_kd.get_config(f"variant=local,{arg}")
    with pytest.raises(ValueError, match="rollout_row=first.*class token"):
        temporal_kd.get_config("variant=local,rollout_row=first")
    with pytest.raises(ValueError, match="target=cached with data=fsd50k"):
        temporal_kd.get_config("variant=paper,data=fsd50k,target=cached")


def test_tiny_recipe_end_to_end_cached_target_equals_fresh_teacher(tmp_path, data_dir):
    """teacher -> rollout cache -> plain and KD students on real noisy Speech Commands clips
    (this is the recipe's tests/test_configs.py run, with checks): the cached target of each
    clip equals a fresh teacher forward's rollout row; the head is trained and saved but not
    deployed, evaluated or counted; the summary pairs the KD arm with its baseline."""
    from kdjax.data import get_source
    from kdjax.data.pipeline import eval_batches
    from kdjax.losses import rollout_frame_distribution
    from kdjax.train import stages
    from kdjax.train.checkpoint import load_best_variables, load_last_variables

    cfg = temporal_kd.get_config("variant=tiny")
    assert cfg.run == "teacher,rollout,temporal_cnn_l000,temporal_cnn_l050"
    summary = stages.run_stages(cfg, str(tmp_path))
    assert "paired_over_temporal_cnn_l000" in summary["stages"]["temporal_cnn_l050"]

    tc = cfg.stages.teacher
    src = get_source(tc.data.name, "test", **dict(tc.data.kw))
    cached = np.load(tmp_path / "rollout" / "arrays" / "test" / "rollout.npy")
    assert cached.shape[0] == len(src) and np.allclose(cached.sum(-1), 1.0, atol=1e-5)
    prog = program.build_program(tc, src.num_classes, src.sample_rate)
    v = {"teacher": load_best_variables(tmp_path / "teacher", "teacher")}
    fwd = jax.jit(lambda v, b: forward(prog, v, b, jax.random.key(0), train=False)[0])
    batch = next(eval_batches(src, clip_samples=int(tc.data.clip_seconds * src.sample_rate), batch_size=8))
    ns = fwd(v, {"audio": batch["audio"]})
    fresh = np.asarray(rollout_frame_distribution(ns["teacher"]["feats"]["attention"]))
    np.testing.assert_allclose(cached[:8], fresh, rtol=1e-5, atol=1e-7)

    import json

    run = tmp_path / "temporal_cnn_l050" / "seed0"
    r = json.loads((run / "result.json").read_text())
    base = json.loads((tmp_path / "temporal_cnn_l000" / "seed0" / "result.json").read_text())
    assert set(r["params"]) == {"student"} and set(r["models"]) == {"student"}
    assert r["params"] == base["params"] and r["train_only_params"]["head"] > 0
    head = load_last_variables(run, "head")
    assert count_params(head["params"]) == r["train_only_params"]["head"]
    with pytest.raises(KeyError, match="no model 'head'"):
        load_best_variables(run, "head")  # the deployed checkpoint holds the student only


def _np_rollout(attn, fusion):
    fuse = {"mean": np.mean, "max": np.max, "min": np.min}[fusion]
    n_layers, b_size, _, n, _ = attn.shape
    out = np.zeros((b_size, n, n))
    for b in range(b_size):
        r = np.eye(n)
        for layer in range(n_layers):
            a = fuse(attn[layer, b], axis=0) + np.eye(n)
            r = (a / a.sum(-1, keepdims=True)) @ r
        out[b] = r
    return out


def test_live_target_in_the_step_follows_head_fusion():
    """target=live, head_fusion=max: the step's KD term uses the max-fused rollout (issue #26:
    the live target silently used the head mean)."""
    c, prog, state, teachers, batch = _setup(extra=",head_fusion=max")
    assert c.losses.tkd.kw.head_fusion == "max"
    ns = _namespace_jit(prog, state, teachers, batch)
    scores = np.asarray(ns["head"]["logits"], np.float64)
    attn = np.asarray(ns["teacher"]["teacher"]["feats"]["attention"], np.float64)
    m = batch["mask"]
    _, got = jax.jit(lambda n: weighted_loss(prog.terms, n, jnp.asarray(m)))(ns)

    def want(fusion):
        r = _np_rollout(attn, fusion)[:, 0, 1:]
        r = r / r.sum(-1, keepdims=True)
        t = _ref.interp_linear(r[:, :, None], scores.shape[1])[:, :, 0]
        t = t / t.sum(-1, keepdims=True)
        kl = (t * (np.log(t) - _np_log_softmax(scores))).sum(-1)
        return float((kl * m).sum() / m.sum())

    np.testing.assert_allclose(float(got["loss/tkd"]), want("max"), rtol=2e-4)
    assert abs(want("max") - want("mean")) > 1e-3 * abs(want("mean"))  # the fusions differ
    # the cached path stores the same choice
    cached = temporal_kd.get_config("variant=tiny,head_fusion=max").stages.rollout
    assert cached.cache.outputs.rollout.kw.head_fusion == "max"


def test_paper_default_target_is_the_first_tokens_whole_row():
    """variant=paper (wav2vec 2.0, no class token, target=live): the loss term's kw select row 0
    of the rollout with all N entries, checked against a NumPy rollout; rollout_row=cls and
    mean stay available and give other targets."""
    from kdjax.losses import temporal_attention_kd

    rng = np.random.default_rng(5)
    z = rng.normal(size=(2, 4, 3, 7, 7)) * 2.0
    attn = np.exp(z) / np.exp(z).sum(-1, keepdims=True)  # [L, B, H, N, N], N = 7 frames
    s = rng.normal(size=(4, 11))  # the head's scores over 11 student frames
    r = _np_rollout(attn, "mean")

    def kl(row):
        t = _ref.interp_linear((row / row.sum(-1, keepdims=True))[:, :, None], 11)[:, :, 0]
        t = t / t.sum(-1, keepdims=True)
        return (t * (np.log(t) - _np_log_softmax(s))).sum(-1)

    want = {"first": kl(r[:, 0, :]), "cls": kl(r[:, 0, 1:]), "mean": kl(r.mean(1))}
    for row in ("", "first", "cls", "mean"):
        cfg = temporal_kd.get_config(f"variant=paper,data=sc2,rollout_row={row}")
        kw = dict(cfg.stages.att_rnn_l050.losses.tkd.kw)
        got = jax.jit(lambda a, b, kw=kw: temporal_attention_kd(a, b, **kw))(
            jnp.asarray(s, jnp.float32), jnp.asarray(attn, jnp.float32))
        np.testing.assert_allclose(np.asarray(got), want[row or "first"], rtol=1e-4)
    assert np.abs(want["first"] - want["cls"]).max() > 1e-3


@pytest.mark.parametrize("student, path, logits", [
    ("att_rnn", "attention_scores", True), ("mhatt_rnn", "attention_weights", False)])
def test_own_attention_arm_distils_the_rnns_attention_without_a_head(student, path, logits):
    """arms=own (issue #26): the KD term reads the attention RNN's own attention over frames
    (Att-RNN: its scores; MHAtt-RNN: the heads' mean weights), no attention head is built, the
    term equals a NumPy KL against the cached target, and its gradient reaches the RNN's
    attention query parameters."""
    c, prog, state, teachers, batch = _setup(student, target="cached", arm="_own")
    assert set(c.models) == {"student"} and set(prog.models) == {"student"} and not prog.teachers
    assert "head" not in state.params and c.baseline == f"{student}_l000"
    assert list(c.losses.tkd.inputs) == [f"student.feats.{path}", "batch.rollout"]
    assert c.losses.tkd.kw.student_is_logits is logits
    tkd_only = dataclass_replace_terms(prog, keep=("tkd",))
    m = jnp.asarray(batch["mask"])

    ns = _namespace_jit(prog, state, teachers, batch)
    _, got = jax.jit(lambda n: weighted_loss(tkd_only.terms, n, m))(ns)
    feats = ns["student"]["feats"]
    w = np.asarray(feats["attention_weights"], np.float64)  # [B, T]
    if student == "mhatt_rnn":  # the heads' mean, as documented
        np.testing.assert_allclose(w, np.asarray(feats["head_attention_weights"]).mean(1), rtol=1e-6)
    t = _ref.interp_linear(batch["rollout"].astype(np.float64)[:, :, None], w.shape[1])[:, :, 0]
    t = t / t.sum(-1, keepdims=True)
    kl = (t * (np.log(t) - np.log(w))).sum(-1)
    want = float((kl * batch["mask"]).sum() / batch["mask"].sum())
    np.testing.assert_allclose(float(got["loss/tkd"]), want, rtol=2e-4)  # the unweighted term

    grads = jax.jit(jax.grad(lambda p: weighted_loss(
        tkd_only.terms, step_namespace(tkd_only, state.replace(params=p), teachers, batch), m)[0]))(
        state.params)
    query = "query" if student == "att_rnn" else "queries"
    assert float(jnp.abs(grads["student"][query]["kernel"]).sum()) > 0
    # the classifier after the attention vector gets nothing from the KD term
    assert float(jnp.abs(grads["student"]["head"]["kernel"]).sum()) == 0


def test_own_attention_arm_stage_names_and_errors():
    cfg = temporal_kd.get_config("variant=local,students=att_rnn,lambdas=0+0.5,arms=head+own")
    assert cfg.run == "teacher,rollout,att_rnn_l000,att_rnn_l050,att_rnn_own_l050"
    only = temporal_kd.get_config("variant=local,students=mhatt_rnn+crnn,lambdas=0+0.5,arms=own")
    assert only.run == "teacher,rollout,crnn_l000,mhatt_rnn_l000,mhatt_rnn_own_l050"
    one = temporal_kd.get_config("variant=local,stage=rollout+att_rnn_own_l025")
    assert one.run == "rollout,att_rnn_own_l025"
    default = temporal_kd.get_config("variant=local")
    assert "_own_" not in default.run  # the default run list is unchanged
    assert "crnn_own_l050" not in default.stages  # only the attention RNNs have their own attention
    with pytest.raises(ValueError, match="arms='extra'"):
        temporal_kd.get_config("variant=local,arms=extra")


def test_lstm_p_input_norm_removes_the_feature_offset_and_scale():
    """lstm_p input_norm=True (issue #26: LSTM-P on log-mel dB inputs stayed at chance): a
    per-bin BatchNorm first, so in train mode the logits do not change when every mel bin is
    shifted and scaled (x -> a_f x + b_f, a_f > 0); the default builds no such layer."""
    from kdjax.models import lstm_p

    rng = np.random.default_rng(8)
    x = (rng.normal(size=(6, 30, F)) * 14.0 - 20.0).astype(np.float32)  # dB-like features
    a = rng.uniform(0.5, 3.0, size=F).astype(np.float32)
    b = rng.uniform(-40.0, 40.0, size=F).astype(np.float32)
    m = lstm_p.Model(num_classes=C, units=8, proj=4, input_norm=True)
    v = jax.jit(lambda k, x: m.init(k, x, train=False))(jax.random.key(0), x)
    assert "input_bn" in v["params"] and "input_bn" in v["batch_stats"]
    run = jax.jit(lambda v, x: m.apply(v, x, train=True, mutable=["batch_stats"])[0][0])
    np.testing.assert_allclose(np.asarray(run(v, x * a + b)), np.asarray(run(v, x)), rtol=1e-3,
                               atol=1e-4)
    v0 = jax.jit(lambda k, x: lstm_p.Model(num_classes=C, units=8, proj=4).init(k, x))(
        jax.random.key(0), x)
    assert "input_bn" not in v0["params"] and not v0.get("batch_stats")
