"""kdjax.augment: SpecAugment masks, mixup, gain, time shift (determinism, statistics, errors)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kdjax import augment as A


def test_spec_augment_masks_full_rows_and_columns() -> None:
    x = jnp.ones((16, 50, 40))
    key = jax.random.key(0)
    y = np.asarray(A.spec_augment(key, x, num_time_masks=2, max_time_width=10, num_freq_masks=1,
                                  max_freq_width=5, mask_value=-1.0))
    assert set(np.unique(y)) <= {-1.0, 1.0}
    masked = y == -1.0
    # A masked element lies on a fully masked frame or a fully masked bin.
    t_full, f_full = masked.all(axis=2), masked.all(axis=1)
    assert np.all(masked == (t_full[:, :, None] | f_full[:, None, :]))
    assert t_full.sum(axis=1).max() <= 20 and f_full.sum(axis=1).max() <= 5
    assert masked.any()  # 16 examples: some masks have non-zero width
    np.testing.assert_array_equal(y, np.asarray(A.spec_augment(key, x, num_time_masks=2, max_time_width=10,
                                                               num_freq_masks=1, max_freq_width=5, mask_value=-1.0)))
    z = A.spec_augment(key, x, num_time_masks=0, max_time_width=0, num_freq_masks=0, max_freq_width=0)
    np.testing.assert_array_equal(np.asarray(z), np.asarray(x))
    y_jit = jax.jit(lambda k, a: A.spec_augment(k, a, mask_value="mean"))(key, x)
    assert y_jit.shape == x.shape
    with pytest.raises(ValueError, match="rank 3"):
        A.spec_augment(key, jnp.ones((5, 5)))
    with pytest.raises(ValueError, match="mask_value"):
        A.spec_augment(key, x, mask_value="min")


def test_mixup_convex_and_labels_are_probabilities() -> None:
    key = jax.random.key(1)
    x = jax.random.normal(key, (8, 100))
    labels = jax.nn.one_hot(jnp.arange(8) % 3, 3)
    xm, ym = A.mixup(jax.random.key(2), x, labels, alpha=0.4)
    assert xm.shape == x.shape and ym.shape == labels.shape
    np.testing.assert_allclose(np.asarray(ym.sum(-1)), 1.0, rtol=1e-6)
    assert float(ym.min()) >= 0.0
    # Mean of the batch is preserved up to the per-example weights: check one example explicitly.
    with pytest.raises(ValueError, match="alpha"):
        A.mixup(key, x, labels, alpha=0.0)
    with pytest.raises(ValueError, match="labels"):
        A.mixup(key, x, jnp.arange(8), alpha=0.2)


def test_gain_and_shift() -> None:
    key = jax.random.key(3)
    w = jnp.ones((4, 10))
    g = np.asarray(A.random_gain(key, w, min_db=-6.0, max_db=6.0))
    assert np.all(g > 10 ** (-6 / 20) - 1e-6) and np.all(g < 10 ** (6 / 20) + 1e-6)
    x = jnp.tile(jnp.arange(1.0, 11.0), (4, 1))
    s = np.asarray(A.time_shift(key, x, max_shift=3))
    r = np.asarray(A.time_shift(key, x, max_shift=3, roll=True))
    for i in range(4):
        base = np.arange(1.0, 11.0)
        assert any(np.array_equal(r[i], np.roll(base, k)) for k in range(-3, 4))
        nz = s[i] != 0
        np.testing.assert_array_equal(s[i][nz], r[i][nz])
    with pytest.raises(ValueError, match="max_shift"):
        A.time_shift(key, x, max_shift=-1)


# --- the platform's SpecAugment hook (config `spec_augment`, kdjax.train.forward.augment_features) ---


def _np_bands(key, batch, size, num, max_width):
    """NumPy masks `[B, size]` from the same draws (Park et al. 2019, section 2): widths
    w ~ U{0..W} (jax.random.randint), starts floor(u (size - w + 1)), u ~ U[0, 1)."""
    if num == 0 or max_width == 0:
        return np.zeros((batch, size), bool)
    kw, ks = jax.random.split(key)
    w = np.minimum(np.asarray(jax.random.randint(kw, (batch, num), 0, max_width + 1)), size)
    start = (np.asarray(jax.random.uniform(ks, (batch, num))) * (size - w + 1)).astype(np.int64)
    out = np.zeros((batch, size), bool)
    for b in range(batch):
        for m in range(num):
            out[b, start[b, m]: start[b, m] + w[b, m]] = True
    return out


def _hook_config(spec=None, shared=False):
    """A student (frontend) with a live teacher on its own, identical front-end: KD + CE
    (`shared`: both read one named front-end, `frontends.mel`)."""
    import ml_collections

    from kdjax.frontends.registry import preset

    fe = preset("logmel64_16k", hop_length=320)
    net = dict(model="cnn2d", kw=dict(widths=(4, 8), block_dropout=0.0, dropout=0.0),
               frontend="mel" if shared else fe)
    c = ml_collections.ConfigDict()
    if shared:
        c.frontends = {"mel": fe}
    c.models = {"student": net}
    c.teachers = {"t": dict(net)}
    c.losses = {"ce": dict(fn="softmax_xent", inputs=["student.logits", "batch.labels"]),
                "kd": dict(fn="kd_kl", kw=dict(temperature=2.0),
                           inputs=["student.logits", "teacher.t.logits"])}
    if spec is not None:
        c.spec_augment = spec
    return c


SPEC = dict(freq_masks=2, freq_width=8, time_masks=2, time_width=6)


def test_spec_augment_config_fields_and_errors() -> None:
    assert A.spec_augment_config(None) is None and A.spec_augment_config({}) is None
    assert A.spec_augment_config(dict(freq_masks=2, freq_width=0)) is None  # masks nothing
    assert A.spec_augment_config(SPEC) == dict(num_freq_masks=2, max_freq_width=8, num_time_masks=2,
                                               max_time_width=6, mask_value="mean")
    assert A.spec_augment_config(dict(SPEC, mask_value=-3))["mask_value"] == -3.0
    for bad, msg in ((dict(SPEC, freq_mask=1), "unknown field"), (dict(SPEC, time_width=-1), "time_width"),
                     (dict(SPEC, freq_masks=1.5), "freq_masks"), (dict(SPEC, mask_value="min"), "mask_value")):
        with pytest.raises(ValueError, match=msg):
            A.spec_augment_config(bad)


def test_spec_augment_hook_masks_the_students_input_only_and_not_at_evaluation() -> None:
    """Fixed step key: the student's log-mel `[B, T, F]` in the step equals a NumPy masking of
    the same draws (mean fill, per example); the teacher's front-end output and logits are those
    of the unmasked audio; the step's loss is the loss on the masked input; eval is unchanged."""
    import optax

    from kdjax.models import build
    from kdjax.train.forward import SPEC_AUGMENT_SALT, augment_features, forward, init_variables
    from kdjax.train.program import build_program
    from kdjax.train.state import TrainState
    from kdjax.train.step import eval_logits, train_step

    b, n, c = 6, 8000, 5
    prog = build_program(_hook_config(SPEC), c, 16000)
    plain = build_program(_hook_config(), c, 16000)
    assert prog.augmented == ("student",) and plain.spec_augment is None
    rng = np.random.default_rng(0)
    batch = {"audio": (0.1 * rng.standard_normal((b, n))).astype(np.float32),
             "labels": np.eye(c, dtype=np.float32)[rng.integers(0, c, b)],
             "mask": np.ones(b, np.float32)}
    step_key = jax.random.fold_in(jax.random.key(3), 0)  # train_step's key at step 0
    got = np.asarray(augment_features(prog, batch, step_key)["features.student"])
    x = np.asarray(plain.features(batch["audio"], needed={"student"})["student"])
    _, t, f = x.shape
    kt, kf = jax.random.split(jax.random.fold_in(jax.random.fold_in(step_key, SPEC_AUGMENT_SALT), 0))
    bands = _np_bands(kt, b, t, 2, 6)[:, :, None] | _np_bands(kf, b, f, 2, 8)[:, None, :]
    assert 0 < bands.mean() < 0.6 and bands.any(axis=(1, 2)).all()  # the draw masks something
    want = np.where(bands, x.mean(axis=(1, 2), keepdims=True), x)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert np.array_equal(got != x, bands & (want != x))  # exactly the chosen bands changed
    # The step: the student sees the masked input, the teacher its own unmasked one.
    params, stats = init_variables(prog, jax.random.key(0), n)
    tm = build("cnn2d", num_classes=c, widths=(4, 8), block_dropout=0.0, dropout=0.0)
    tv = tm.init(jax.random.key(1), jnp.asarray(x), train=False)
    teachers = {"t": {"params": tv["params"], "batch_stats": tv["batch_stats"]}}
    state = TrainState.create(params=params, batch_stats=stats, tx=optax.sgd(0.0))
    _, metrics = jax.jit(lambda s, bt, r: train_step(s, teachers, bt, r, program=prog))(
        state, batch, jax.random.key(3))
    v = dict(teachers) | {"student": {"params": params["student"], "batch_stats": stats["student"]}}
    ns, _ = forward(prog, v, batch, step_key, train=True, overrides={"features.student": jnp.asarray(want)})
    np.testing.assert_allclose(np.asarray(ns["features"]["teacher_t"]), x, rtol=1e-6, atol=1e-6)
    t_logits = tm.apply(tv, jnp.asarray(x), train=False)[0]
    np.testing.assert_allclose(np.asarray(ns["teacher"]["t"]["logits"]), np.asarray(t_logits), rtol=1e-5, atol=1e-6)
    ce = float(np.mean(-np.sum(batch["labels"] * np.asarray(jax.nn.log_softmax(ns["student"]["logits"])), -1)))
    np.testing.assert_allclose(float(metrics["loss/ce"]), ce, rtol=1e-4, atol=1e-5)
    ns_plain, _ = forward(plain, v, batch, step_key, train=True)
    assert abs(float(metrics["loss/ce"]) - float(np.mean(-np.sum(
        batch["labels"] * np.asarray(jax.nn.log_softmax(ns_plain["student"]["logits"])), -1)))) > 1e-4
    # Evaluation: the same logits with and without the hook.
    np.testing.assert_array_equal(np.asarray(eval_logits(params, stats, batch["audio"], program=prog)["student"]),
                                  np.asarray(eval_logits(params, stats, batch["audio"], program=plain)["student"]))


def test_spec_augment_hook_refuses_a_front_end_shared_with_a_live_teacher() -> None:
    from kdjax.train.program import build_program

    cfg = _hook_config(SPEC, shared=True)
    with pytest.raises(ValueError, match="own frontend"):
        build_program(cfg, 5, 16000)
    with cfg.unlocked():
        cfg.teachers = {}
        cfg.losses = {"ce": cfg.losses.ce}
    assert build_program(cfg, 5, 16000).augmented == ("mel",)
