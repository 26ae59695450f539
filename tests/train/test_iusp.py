"""The IUSP recipe (configs/iusp.py) inside the real train step, against independent NumPy values.

The recipe's own stage configs are built into a Program; the loss terms the step reports
(BCE, Bernoulli KD, batch SP, IUSP) are compared with NumPy formulas evaluated on the same
forward pass's features; padded examples (mask 0), unknown labels (label_mask 0) and masked
frames change nothing; the multi-label train metric is micro-F1 over known labels.
"""

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import iusp
from kdjax.train import program
from kdjax.train.evaluate import evaluate
from kdjax.train.forward import init_variables, train_metrics, weighted_loss
from kdjax.train.setup import make_optimizer
from kdjax.train.state import TrainState
from kdjax.train.step import train_step
from tests.train._step import step_namespace

B, T_IN, F, C = 5, 40, 64, 10


def _np_sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _np_bce(z, y, lm):
    per = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    return (per * lm).sum(-1) / np.maximum(lm.sum(-1), 1e-12)


def _np_kd(zs, zt, temp):
    pt, ps = _np_sigmoid(zt / temp), _np_sigmoid(zs / temp)
    kl = pt * np.log(pt / ps) + (1 - pt) * np.log((1 - pt) / (1 - ps))
    return temp**2 * kl.mean(-1)


def _np_gram_rows(a):
    g = a @ a.T
    return g / np.maximum(np.linalg.norm(g, axis=-1, keepdims=True), 1e-12)


def _np_sp(s, t, mask):
    keep = mask > 0
    s, t = s[keep].reshape(keep.sum(), -1), t[keep].reshape(keep.sum(), -1)
    return ((_np_gram_rows(t) - _np_gram_rows(s)) ** 2).sum() / keep.sum() ** 2


def _np_iusp(s, t, frame_mask):
    out = []
    for b in range(s.shape[0]):
        k = frame_mask[b] > 0
        out.append(((_np_gram_rows(t[b][k]) - _np_gram_rows(s[b][k])) ** 2).sum() / k.sum() ** 2)
    return np.array(out)


def _masked_mean(v, m):
    return float((v * m).sum() / m.sum())


def _stage(arm, **arg):
    extra = ",".join(f"{k}={v}" for k, v in arg.items())
    cfg = iusp.get_config("variant=tiny" + ("," + extra if extra else ""))
    return copy.deepcopy(cfg.stages[f"{arm}_small"])


def _setup(arm, **arg):
    """(program, state, teacher variables, batch) for a stage of the recipe on a random batch."""
    c = _stage(arm, **arg)
    prog = program.build_program(c, C, 16000, multi_label=True)
    rng = np.random.default_rng(0)
    labels = (rng.random((B, C)) < 0.3).astype(np.float32)
    label_mask = (rng.random((B, C)) < 0.8).astype(np.float32)
    batch = {"features/student": rng.normal(size=(B, T_IN, F)).astype(np.float32),
             "labels": labels, "label_mask": label_mask,
             "mask": np.array([1, 1, 1, 1, 0], np.float32)}
    if "teacher" in prog.teachers:
        batch["features/teacher_teacher"] = rng.normal(size=(B, T_IN, F)).astype(np.float32)
        tmod = prog.teachers["teacher"]
        v = tmod.init(jax.random.key(7), batch["features/teacher_teacher"], train=False)
        # non-trivial running statistics, so the frozen teacher's eval-mode BN is not an identity
        v = {"params": v["params"], "batch_stats": jax.tree.map(lambda x: x + 0.1, v["batch_stats"])}
        teachers = {"teacher": v}
    else:
        teachers = {}
    params, stats = init_variables(prog, jax.random.key(1), 16000, teachers, batch)
    tx, _ = make_optimizer(c)
    state = TrainState.create(params=params, batch_stats=stats, tx=tx)
    return c, prog, state, teachers, batch


def _np(x):
    return np.asarray(x, np.float64)


@pytest.mark.parametrize("arm", ["sp", "iusp"])
def test_terms_in_the_train_step_match_numpy(arm):
    c, prog, state, teachers, batch = _setup(arm)
    _, metrics = jax.jit(lambda s, t, b, r: train_step(s, t, b, r, program=prog))(
        state, teachers, batch, jax.random.key(3))
    ns = step_namespace(prog, state, teachers, batch)
    m = batch["mask"]
    zs, zt = _np(ns["student"]["logits"]), _np(ns["teacher"]["teacher"]["logits"])
    want = {"bce": _masked_mean(_np_bce(zs, batch["labels"], batch["label_mask"]), m),
            "kd": _masked_mean(_np_kd(zs, zt, 2.0), m)}
    fs, ft = ns["student"]["feats"], ns["teacher"]["teacher"]["feats"]
    if arm == "sp":
        want["sp"] = _np_sp(_np(fs["embedding"]), _np(ft["embedding"]), m)
    else:
        s, t = _np(fs["frames"]), _np(ft["frames"])
        assert s.shape[1] == t.shape[1] > 1  # same time stride: aligned without interpolation
        want["iusp"] = _masked_mean(_np_iusp(s, t, np.ones(s.shape[:2])), m)
    weights = {k: float(v.weight) for k, v in c.losses.items()}
    assert weights == {"bce": 1.5, "kd": 1.5, arm: 10.0}  # third-party SP weights (PAPERS.md)
    for k, v in want.items():
        np.testing.assert_allclose(float(metrics[f"loss/{k}"]), v, rtol=2e-4, atol=1e-7, err_msg=k)
        assert v > 0
    np.testing.assert_allclose(float(metrics["loss"]), sum(weights[k] * v for k, v in want.items()), rtol=2e-4)


@pytest.mark.parametrize("arm", ["sp", "iusp"])
def test_padding_rows_and_unknown_labels_change_nothing(arm):
    c, prog, state, teachers, batch = _setup(arm)
    ns = step_namespace(prog, state, teachers, batch)
    total, ref = weighted_loss(prog.terms, ns, jnp.asarray(batch["mask"]))
    # garbage in the padding row (every array the terms read) and in every unknown label
    bad = jax.tree.map(np.array, ns)
    for node in (bad["student"], bad["teacher"]["teacher"]):
        node["logits"][-1] = 1e3
        for v in node["feats"].values():
            v[-1] = np.random.default_rng(1).normal(size=v[-1].shape) * 100
    lm = batch["label_mask"]
    bad["batch"]["labels"] = np.where(lm > 0, batch["labels"], 1.0 - batch["labels"]).astype(np.float32)
    bad["batch"]["labels"][-1] = 1.0
    total2, got = weighted_loss(prog.terms, bad, jnp.asarray(batch["mask"]))
    for k in ref:
        np.testing.assert_allclose(float(got[k]), float(ref[k]), rtol=1e-6, atol=1e-8, err_msg=k)
    assert np.any(lm == 0) and float(total2) == pytest.approx(float(total), rel=1e-6)


def test_masked_frames_change_nothing_and_match_numpy():
    c, prog, state, teachers, batch = _setup("iusp", frame_mask="frame_mask")
    assert dict(c.losses.iusp.kw_inputs) == {"frame_mask": "batch.frame_mask"}
    ns = step_namespace(prog, state, teachers, batch)
    t = ns["student"]["feats"]["frames"].shape[1]
    fm = np.ones((B, t), np.float32)
    fm[0, -2:] = 0.0
    fm[2, -1] = 0.0
    ns["batch"]["frame_mask"] = fm
    _, ref = weighted_loss(prog.terms, ns, jnp.asarray(batch["mask"]))
    s, tt = _np(ns["student"]["feats"]["frames"]), _np(ns["teacher"]["teacher"]["feats"]["frames"])
    np.testing.assert_allclose(float(ref["loss/iusp"]), _masked_mean(_np_iusp(s, tt, fm), batch["mask"]),
                               rtol=2e-4)
    bad = jax.tree.map(np.array, ns)
    bad["student"]["feats"]["frames"][fm == 0] = 50.0
    bad["teacher"]["teacher"]["feats"]["frames"][fm == 0] = -50.0
    _, got = weighted_loss(prog.terms, bad, jnp.asarray(batch["mask"]))
    np.testing.assert_allclose(float(got["loss/iusp"]), float(ref["loss/iusp"]), rtol=1e-6)


def test_multi_label_train_metric_is_micro_f1_over_known_labels():
    c, prog, state, teachers, batch = _setup("bce")
    assert prog.multi_label and set(c.losses) == {"bce"}
    ns = step_namespace(prog, state, teachers, batch)
    out = train_metrics(prog, ns, batch)
    z = np.asarray(ns["student"]["logits"])
    keep = (batch["label_mask"] * batch["mask"][:, None]) > 0
    pred, y = (z > 0)[keep], (batch["labels"] > 0.5)[keep]
    tp, fp, fn = (pred & y).sum(), (pred & ~y).sum(), (~pred & y).sum()
    np.testing.assert_allclose(float(out["train_micro_f1/student"]), 2 * tp / max(2 * tp + fp + fn, 1), rtol=1e-6)


def test_selection_metric_is_dcase_micro_auprc_of_probabilities():
    """The loop scores multi-label models on sigmoid probabilities (the DCASE micro-AUPRC
    thresholds scores in [0, 1]); scoring raw logits would give another number."""
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from kdjax.data.synthetic import ArraySource
    from kdjax.train import metrics

    c = _stage("iusp")
    assert c.eval_metric == "micro_auprc"
    rng = np.random.default_rng(0)
    z = (rng.normal(size=(20, C)) * 3).astype(np.float32)
    y = (rng.random((20, C)) < 0.3).astype(np.float32)
    audio = np.zeros((20, 64), np.float32)
    audio[:, :C] = z  # a stand-in model whose logits are the first C samples of each clip
    src = ArraySource({"audio": audio, "labels": y}, sample_rate=16000, class_names=[str(k) for k in range(C)],
                      multi_label=True)
    prog = type("Prog", (), {"deployed": ("student",)})()
    mesh = jax.make_mesh((1,), ("data",), devices=jax.devices()[:1])
    out = {}
    r = evaluate(prog, lambda p, b, inputs: {"student": inputs["audio"][:, :C]}, {}, {}, src,
                      clip_samples=64, batch_size=8, data_sharding=NamedSharding(mesh, P("data")),
                      metric="micro_auprc", logits_out=out)
    np.testing.assert_allclose(r["student"]["micro_auprc"], metrics.micro_auprc(_np_sigmoid(z), y), rtol=1e-9)
    assert r["student"]["micro_auprc"] != metrics.micro_auprc(z, y)
    np.testing.assert_array_equal(out["student"], z)  # logits are saved as they are


def test_config_arguments():
    cfg = iusp.get_config("variant=local,data=esc10_mix,student=medium,arm=sp")
    assert cfg.run == "teacher,cache,sp_medium"  # variant=local: teacher=cached
    s = cfg.stages.sp_medium
    # local's round-2 default: SP on the frames, like IUSP (round 1: sp_feat=embedding)
    assert s.baseline == "bce_medium" and s.losses.sp.inputs[0] == "student.feats.frames"
    s = iusp.get_config("variant=local,data=esc10_mix,student=medium,arm=sp,sp_feat=embedding")
    assert s.stages.sp_medium.losses.sp.inputs[0] == "student.feats.embedding"
    cfg = iusp.get_config("variant=local,iusp_layer=fmap1,align=mean")
    assert cfg.stages.iusp_large.losses.iusp.inputs == ["student.feats.fmap1", "teacher.teacher.feats.fmap1"]
    assert cfg.stages.iusp_large.losses.iusp.kw.align == "mean"
    p = iusp.get_config("variant=paper,data=sonyc_fine")
    assert p.stages.teacher.data.name == "sonyc_ust" and p.stages.teacher.data.kw.level == "fine"
    assert p.stages.kd_small.schedule.lr == 1e-4 and not p.runnable_here
    with pytest.raises(ValueError, match="variant"):
        iusp.get_config("variant=x")
    with pytest.raises(ValueError, match="data"):
        iusp.get_config("variant=local,data=nope")
