"""FRAMI (configs/frami.py): what is specific to it beyond the platform's DeepInversion tests.

- the feature-invariant contrastive term (two views + memory bank) inside the inversion
  objective decreases when the synthetic inputs are optimised against a tiny teacher;
- the hidden-state reuse term inside the train step equals a NumPy computation (linear
  projection of the student's frames, mean+std pooling, MSE to the teacher's frames/stats);
- the training-only projection is not part of the deployed model (nor its parameter count);
- the diversity measures equal explicit NumPy loops.
No training run and no data files: tiny random-init models, synthetic batches only.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import frami
from kdjax import models as models_lib
from kdjax import synthetic_diversity as div
from kdjax.train.forward import forward, init_variables, mix
from kdjax.train.invert import inversion_objective
from kdjax.train.program import build_program
from kdjax.train.state import TrainState
from kdjax.train.step import train_step

SR, C = 8000, 10


def _stage(name):
    return frami.get_config("variant=tiny,data=fsdd").stages[name]


def _teacher_vars(p, shape):
    t = p.teachers["t"]  # jitted: op-by-op initialisation is slow on a loaded CPU
    return {"t": jax.jit(lambda k: t.init(k, jnp.zeros(shape), train=False))(jax.random.key(0))}


def _mel_shape(p, b):
    return jax.eval_shape(p.frontends["mel"], jax.ShapeDtypeStruct((b, SR), jnp.float32)).shape


def test_config_arms_read_the_right_synthetic_sets_and_baseline():
    c = frami.get_config("variant=local,data=fsdd")
    roots = {s: c.stages[s].data.get("train_source", {}).get("kw", {}).get("root") for s in
             ("di", "cont", "hidden", "frami", "real")}
    assert roots == {"di": "{stage:inv_di}/synthetic", "cont": "{stage:inv_frami}/synthetic",
                     "hidden": "{stage:inv_di}/synthetic", "frami": "{stage:inv_frami}/synthetic",
                     "real": None}
    assert {s: c.stages[s].baseline for s in ("di", "cont", "hidden", "frami", "real")} == \
        {"di": "", "cont": "di", "hidden": "di", "frami": "di", "real": "di"}
    # real validation clips (held out of all training) for selection only; none with student_val=false
    assert all(c.stages[s].data.eval_split == "validation" for s in ("di", "cont", "hidden", "frami", "real"))
    assert "cont" in c.stages.inv_frami.losses and "cont" not in c.stages.inv_di.losses
    assert c.stages.inv_frami.invert.views == 2 and c.stages.inv_frami.invert.memory_bank.size > 0
    with pytest.raises(ValueError, match="variant='paper', data='fsdd'"):
        frami.get_config("variant=paper,data=fsdd")
    assert list(c.stages.inv_di.invert.clip) == list(c.stages.inv_frami.invert.clip) == [-100.0, 20.0]  # default
    # One inversion per seed (the stage seed, not a fixed invert.seed), or one for all (inv_repeat=false).
    assert c.stages.inv_di.repeat and c.stages.inv_frami.repeat and "seed" not in c.stages.inv_di.invert
    assert not frami.get_config("variant=local,data=fsdd,inv_repeat=false").stages.inv_frami.repeat
    assert "clip" not in frami.get_config("variant=local,data=fsdd,clip=none").stages.inv_di.invert
    clipped = frami.get_config("variant=local,data=fsdd,clip=-90:10")
    assert list(clipped.stages.inv_di.invert.clip) == list(clipped.stages.inv_frami.invert.clip) == [-90.0, 10.0]
    # Every variant's inversion works in dB (the clamp, gain and init are in dB).
    for arg in ("variant=local,data=esc10", "variant=local,data=sc12", "variant=paper,data=us8k",
                "variant=paper,data=esc50", "variant=paper,data=audiomnist"):
        assert frami.get_config(arg).stages.inv_di.frontends.mel.log == "db", arg
    for bad in ("20:-100", "-100", "a:b"):
        with pytest.raises(ValueError, match="config argument clip"):
            frami.get_config(f"variant=local,data=fsdd,clip={bad}")


def test_contrastive_term_with_two_views_and_bank_decreases():
    c = _stage("inv_frami")
    with c.unlocked():  # only the contrastive term: what FRAMI adds to DeepInversion
        c.losses = {"cont": c.losses.cont}
    p = build_program(c, C, SR)
    shape = _mel_shape(p, 8)
    teachers = _teacher_vars(p, shape)
    x = -68.0 + 25.0 * jax.random.normal(jax.random.key(1), shape)
    labels = jax.nn.one_hot(jnp.arange(8) % C, C)
    d = frami.TEACHER_TINY["widths"][-1]
    bank = jax.random.normal(jax.random.key(2), (16, d))  # earlier samples' embeddings [M, D]
    tx = optax.adam(0.5)

    @jax.jit
    def step(x, opt, k):
        (loss, m), g = jax.value_and_grad(
            lambda x: inversion_objective(p, "mel", teachers, x, labels, jax.random.fold_in(jax.random.key(3), k),
                                          jitter=2, views=2, memory_bank=bank), has_aux=True)(x)
        u, opt = tx.update(g, opt, x)
        return optax.apply_updates(x, u), opt, m["loss/cont"]

    opt = tx.init(x)
    vals = []
    for k in range(20):
        x, opt, v = step(x, opt, k)
        vals.append(float(v))
    assert np.isfinite(vals).all()
    assert np.mean(vals[-5:]) < np.mean(vals[:5]) - 0.05, vals


def test_hidden_term_in_the_train_step_equals_numpy():
    # Without the synthetic-feature mixup (tested on its own below), so that the step's batch is
    # the one the NumPy reference sees.
    # round 1's temporal_cnn teacher: its frames align 1:1 with the student's (same total stride);
    # the stats_pool_net teacher's pooling is tested in test_frami_round2.py
    c = frami.get_config("variant=tiny,data=fsdd,student_mixup=0,teacher_model=temporal_cnn").stages.frami
    p = build_program(c, C, SR)
    shape = _mel_shape(p, 4)
    teachers = _teacher_vars(p, shape)
    batch = {"features/mel": np.asarray(-68 + 25 * jax.random.normal(jax.random.key(4), shape), np.float32),
             "labels": np.eye(C, dtype=np.float32)[[0, 1, 2, 3]], "mask": np.ones(4, np.float32)}
    params, stats = init_variables(p, jax.random.key(5), SR, teachers, batch=batch)
    state = TrainState.create(params=params, batch_stats=stats, tx=optax.sgd(0.0))
    _, m = jax.jit(lambda s, t, b, r: train_step(s, t, b, r, program=p))(state, teachers, batch, jax.random.key(6))
    # NumPy: the student's frames (as the step computes them: train-mode BatchNorm), projected.
    variables = dict(teachers) | {n: {"params": params[n], "batch_stats": stats[n]} for n in p.models}
    ns, _ = jax.jit(lambda v, b: forward(p, v, b, jax.random.key(0), train=True))(variables, batch)
    s_frames = np.asarray(ns["student"]["feats"]["frames"], np.float64)
    w = np.asarray(params["proj"]["proj"]["kernel"], np.float64)
    b = np.asarray(params["proj"]["proj"]["bias"], np.float64)
    pf = s_frames @ w + b
    t_frames = np.asarray(ns["teacher"]["t"]["feats"]["frames"], np.float64)
    assert pf.shape == t_frames.shape  # same total stride: frames align 1:1
    pool = lambda f: np.concatenate([f.mean(1), np.sqrt(np.maximum(f.var(1), 1e-8))], -1)  # noqa: E731
    per_ex = ((pf - t_frames) ** 2).mean((1, 2)) + ((pool(pf) - pool(t_frames)) ** 2).mean(1)
    np.testing.assert_allclose(float(m["loss/hidden"]), per_ex.mean(), rtol=1e-4)
    kd_w = c.losses.kd.weight
    np.testing.assert_allclose(float(m["loss"]), kd_w * float(m["loss/kd"]) + c.losses.hidden.weight * per_ex.mean(),
                               rtol=1e-4)


def test_projection_is_training_only_and_not_counted():
    p = build_program(_stage("frami"), C, SR)
    assert p.deployed == ("student",) and set(p.models) == {"student", "proj"}
    assert "proj" not in {n.name for n in p.subgraph(p.deployed)}  # eval runs the student only
    shape = _mel_shape(p, 2)
    teachers = jax.eval_shape(lambda: _teacher_vars(p, shape))  # shapes only: nothing compiles
    params, _ = jax.eval_shape(lambda t: init_variables(p, jax.random.key(0), SR, t), teachers)
    n_proj = models_lib.count_params(params["proj"])
    width_s, width_t = frami.STUDENT_TINY["widths"][-1], frami.TEACHER_TINY["widths"][-1]
    assert n_proj == width_s * width_t + width_t
    # The hidden arm's deployed student has exactly the DeepInversion arm's parameters.
    di = _stage("di")
    p_di = build_program(di, C, SR)
    params_di, _ = jax.eval_shape(lambda t: init_variables(p_di, jax.random.key(0), SR, t), teachers)
    assert models_lib.count_params(params_di["student"]) == models_lib.count_params(params["student"])


def test_diversity_measures_equal_explicit_loops():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(7, 5))
    cos = [1 - z[i] @ z[j] / np.linalg.norm(z[i]) / np.linalg.norm(z[j]) for i in range(7) for j in range(i + 1, 7)]
    euc = [np.linalg.norm(z[i] - z[j]) for i in range(7) for j in range(i + 1, 7)]
    np.testing.assert_allclose(div.mean_pairwise_cosine_distance(z), np.mean(cos), rtol=1e-12)
    np.testing.assert_allclose(div.mean_pairwise_distance(z), np.mean(euc), rtol=1e-9)
    y = np.array([0, 0, 0, 1, 1, 2, 2])
    want = np.mean([div.mean_pairwise_distance(z[y == k]) for k in (0, 1, 2)])
    np.testing.assert_allclose(div.within_class(div.mean_pairwise_distance, z, np.eye(3)[y]), want)
    assert div.mean_pairwise_cosine_distance(np.ones((4, 3))) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="N >= 2"):
        div.mean_pairwise_distance(np.ones((1, 3)))


def test_spectrogram_parametrization_against_scipy_dct_and_interpolation():
    import scipy.fft

    from kdjax.train.invert import spectrogram_parametrization

    b, t, f, k, s = 2, 11, 16, 5, 3
    th_shape, to_x, to_theta = spectrogram_parametrization((b, t, f), k, s)
    assert th_shape == (b, 4, k)  # ceil(11 / 3) kept frames
    theta = np.asarray(jax.random.normal(jax.random.key(0), th_shape), np.float64)
    x = np.asarray(to_x(jnp.asarray(theta, jnp.float32)), np.float64)
    # Reference: the kept frames are inverse orthonormal DCTs of the zero-padded coefficients.
    kept = scipy.fft.idct(np.concatenate([theta, np.zeros((b, 4, f - k))], -1), type=2, norm="ortho", axis=-1)
    np.testing.assert_allclose(x[:, ::s], kept, atol=1e-5)
    np.testing.assert_allclose(x[:, 1], (2 * kept[:, 0] + kept[:, 1]) / 3, atol=1e-5)  # linear in time
    np.testing.assert_allclose(x[:, 10], kept[:, 3], atol=1e-5)  # past the last kept frame: held
    # Every frame is smooth along frequency: no DCT energy above the first K coefficients.
    assert np.abs(scipy.fft.dct(x, type=2, norm="ortho", axis=-1)[..., k:]).max() < 1e-4
    np.testing.assert_allclose(np.asarray(to_theta(jnp.asarray(x, jnp.float32))), theta, atol=1e-5)
    # K = 0, s = 1: the identity (DeepInversion's free inputs).
    shape0, ident, _ = spectrogram_parametrization((b, t, f))
    assert shape0 == (b, t, f) and np.array_equal(np.asarray(ident(jnp.asarray(x))), x)
    # A loss of x differentiates through P to theta.
    g = jax.grad(lambda th: jnp.sum(to_x(th) ** 2))(jnp.asarray(theta, jnp.float32))
    assert g.shape == th_shape and float(jnp.abs(g).max()) > 0
    for kw, msg in ((dict(freq_basis=f + 1), "invert.freq_basis"), (dict(time_stride=0), "invert.time_stride")):
        with pytest.raises(ValueError, match=msg):
            spectrogram_parametrization((b, t, f), **kw)


def test_frequency_jitter_and_gain_views_are_shifted_copies():
    from kdjax.train.invert import _augment

    x = np.asarray(jax.random.normal(jax.random.key(1), (6, 7, 12)), np.float32)
    y = np.asarray(_augment(jnp.asarray(x), jax.random.key(2), 0, False, freq_jitter=2, gain_db=6.0))
    shifts = []
    for i in range(len(x)):  # each example: x shifted by some k in [-2, 2] bins (edges repeated) + one offset
        fits = []
        for k in range(-2, 3):
            idx = np.clip(np.arange(12) - k, 0, 11)
            d = y[i] - x[i][:, idx]
            if np.ptp(d) < 1e-5 and abs(d.mean()) <= 6.0:
                fits.append(k)
        assert fits, i
        shifts.append(fits[0])
    assert len(set(shifts)) > 1  # per example, not one shift for the batch


def test_mixup_of_synthetic_features_mixes_inputs_and_labels_alike(tmp_path):
    from kdjax import augment
    from kdjax.data.synthetic import source as synthetic_source

    c = frami.get_config("variant=tiny,data=fsdd,student_mixup=0.4").stages.di
    assert c.mixup_alpha == 0.4 and c.data.train_source.kw.extras is False
    p = build_program(c, C, SR)
    x = np.asarray(jax.random.normal(jax.random.key(3), (4, 9, 5)), np.float32)
    y = np.eye(C, dtype=np.float32)[[0, 1, 2, 3]]
    batch = {"features/mel": x, "labels": y, "mask": np.ones(4, np.float32)}
    out = mix(p, batch, jax.random.key(4))
    ref_x, ref_y = augment.mixup(jax.random.fold_in(jax.random.key(4), 0x7FFFFFFF), x, y, alpha=0.4)
    np.testing.assert_allclose(out["features/mel"], ref_x, rtol=1e-6)
    np.testing.assert_allclose(out["labels"], ref_y, rtol=1e-6)
    assert not np.allclose(out["features/mel"], x)
    with pytest.raises(ValueError, match="teacher_logits"):  # stored logits cannot follow the mix
        mix(p, dict(batch, teacher_logits=np.zeros((4, C), np.float32)), jax.random.key(4))
    # The synthetic source leaves the stored per-clip arrays out with extras=False.
    (tmp_path / "meta.json").write_text('{"sample_rate": 8000, "class_names": ["a", "b"], "feature_key": "mel"}')
    np.savez(tmp_path / "shard_00000.npz", **{"features/mel": x[:2], "labels": y[:2, :2],
                                               "teacher_logits": np.zeros((2, 2), np.float32)})
    assert "teacher_logits" in synthetic_source(root=str(tmp_path)).arrays
    assert set(synthetic_source(root=str(tmp_path), extras=False).arrays) == {"features/mel", "labels"}


def test_adversarial_inversion_term_equals_numpy_js_and_reaches_the_inputs():
    c = _stage("inv_adv")
    assert c.teachers.s.checkpoint == "di:student" and c.losses.adv.weight == -1.0
    with pytest.raises(ValueError, match="unknown stage"):
        frami.get_config("variant=tiny,data=fsdd,stage=inv_di+nope")
    p = build_program(c, C, SR)
    shape = _mel_shape(p, 6)
    t, s = p.teachers["t"], p.teachers["s"]
    init = jax.jit(lambda m, k: m.init(k, jnp.zeros(shape), train=False), static_argnums=0)
    teachers = {"t": init(t, jax.random.key(0)), "s": init(s, jax.random.key(1))}
    x = -68.0 + 25.0 * jax.random.normal(jax.random.key(2), shape)
    labels = jax.nn.one_hot(jnp.arange(6) % C, C)
    obj = jax.jit(lambda x: inversion_objective(p, "mel", teachers, x, labels, jax.random.key(3)))
    _, m = obj(x)
    # NumPy: JS at the config's temperature between the two frozen modules' eval-mode logits.
    logits = jax.jit(lambda m, v, x: m.apply(v, x, train=False)[0], static_argnums=0)  # one compile, not op by op
    zt = np.asarray(logits(t, teachers["t"], x), np.float64) / c.losses.adv.kw.temperature
    zs = np.asarray(logits(s, teachers["s"], x), np.float64) / c.losses.adv.kw.temperature
    sm = lambda z: np.exp(z - z.max(-1, keepdims=True)) / np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)  # noqa: E731
    ps, pt = sm(zs), sm(zt)
    mix = (ps + pt) / 2
    js = 0.5 * (ps * np.log(ps / mix)).sum(-1) + 0.5 * (pt * np.log(pt / mix)).sum(-1)
    np.testing.assert_allclose(float(m["loss/adv"]), js.mean(), rtol=1e-4)
    terms = {k[5:]: float(v) for k, v in m.items() if k.startswith("loss/")}
    total = sum(c.losses[k].weight * v for k, v in terms.items())
    np.testing.assert_allclose(float(m["loss"]), total, rtol=1e-4)  # the JS enters with weight -w_adv
    # Ascending JS moves the inputs (the term's gradient reaches x through both frozen modules).
    g = jax.jit(jax.grad(lambda x: inversion_objective(p, "mel", teachers, x, labels, jax.random.key(3))[1]["loss/adv"]))(x)
    assert float(jnp.abs(g).max()) > 0
