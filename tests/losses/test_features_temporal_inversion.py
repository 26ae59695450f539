"""Feature, temporal and data-free losses vs NumPy references; identities; errors."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kdjax import losses as L
from tests.losses import _ref
from tests.losses._ref import J

RTOL = 1e-5
f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
rng = np.random.default_rng


# ---------------------------------------------------------------- align_time
def test_align_time_methods_vs_numpy():
    x = rng(0).normal(size=(2, 5, 3))
    np.testing.assert_allclose(
        L.align_time(f32(x), 12, "interpolate"), _ref.interp_linear(x, 12), rtol=RTOL, atol=1e-6
    )
    np.testing.assert_allclose(
        L.align_time(f32(x), 3, "interpolate"), _ref.interp_linear(x, 3), rtol=RTOL, atol=1e-6
    )
    np.testing.assert_allclose(
        L.align_time(f32(x), 12, "repeat"), _ref.repeat_truncate(x, 12), rtol=RTOL
    )
    np.testing.assert_allclose(L.align_time(f32(x), 3, "truncate"), x[:, :3], rtol=RTOL)
    np.testing.assert_allclose(
        L.align_time(f32(x), 1, "mean"), x.mean(1, keepdims=True), rtol=RTOL, atol=1e-6
    )
    # adaptive average pooling 5 -> 2: windows [0, 3) and [2, 5)
    ref = np.stack([x[:, 0:3].mean(1), x[:, 2:5].mean(1)], 1)
    np.testing.assert_allclose(L.align_time(f32(x), 2, "mean"), ref, rtol=RTOL, atol=1e-6)
    for m in ("interpolate", "repeat", "mean", "truncate"):
        np.testing.assert_array_equal(L.align_time(f32(x), 5, m), f32(x))
    with pytest.raises(ValueError, match="truncate"):
        L.align_time(f32(x), 7, "truncate")
    with pytest.raises(ValueError, match=r"x must have shape \[B, T, D\]"):
        L.align_time(f32(x[0]), 7)


# ---------------------------------------------------------------- hint / AT / stats pooling
def test_hint_l2_vs_numpy():
    r = rng(1)
    s, t = r.normal(size=(3, 4, 5)), r.normal(size=(3, 4, 5))
    d = ((s - t) ** 2).reshape(3, -1)
    np.testing.assert_allclose(J.hint_l2(f32(s), f32(t)), d.mean(-1), rtol=RTOL)
    np.testing.assert_allclose(
        J.hint_l2(f32(s), f32(t), reduction="half_sum"), 0.5 * d.sum(-1), rtol=RTOL
    )
    np.testing.assert_allclose(J.hint_l2(f32(s), f32(s)), 0.0)
    with pytest.raises(ValueError, match="regressor"):
        L.hint_l2(f32(s), f32(t[..., :2]))


def np_at(x, p=2):
    q = (np.abs(x) ** p).mean(-1).reshape(x.shape[0], -1)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def test_attention_transfer_vs_numpy_both_conventions():
    r = rng(2)
    s, t = r.normal(size=(3, 6, 4, 5)), r.normal(size=(3, 6, 4, 8))  # channels may differ
    d = np_at(s) - np_at(t)
    np.testing.assert_allclose(J.attention_transfer(f32(s), f32(t)), (d**2).mean(-1), rtol=RTOL)
    np.testing.assert_allclose(
        J.attention_transfer(f32(s), f32(t), convention="paper"),
        np.linalg.norm(d, axis=-1),
        rtol=RTOL,
    )
    np.testing.assert_allclose(J.attention_transfer(f32(s), 3.0 * f32(s)), 0.0, atol=1e-7)
    with pytest.raises(ValueError, match="spatial"):
        L.attention_transfer(f32(s), f32(t[:, :5]))


def test_stats_pooling_hidden_loss_vs_numpy():
    r = rng(3)
    sf, tf = r.normal(size=(3, 6, 4)), r.normal(size=(3, 6, 5))
    w = r.normal(size=(4, 5))
    ps = sf @ w

    def stats(x):
        return np.concatenate([x.mean(1), np.sqrt(x.var(1) + 1e-5)], -1)

    ref = ((ps - tf) ** 2).reshape(3, -1).mean(-1) + ((stats(ps) - stats(tf)) ** 2).mean(-1)
    got = J.stats_pooling_hidden_loss(f32(sf), f32(tf), projection=f32(w))
    np.testing.assert_allclose(got, ref, rtol=RTOL)

    def cos(a, b):
        return 1 - (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)

    ref_c = cos(ps, tf).mean(-1) + cos(stats(ps), stats(tf))
    np.testing.assert_allclose(
        J.stats_pooling_hidden_loss(f32(sf), f32(tf), projection=f32(w), metric="cosine"),
        ref_c,
        rtol=RTOL,
    )
    # callable projection and given stats; equal inputs -> 0
    proj = lambda x: x @ f32(w)  # noqa: E731
    np.testing.assert_allclose(
        J.stats_pooling_hidden_loss(f32(sf), f32(ps), projection=proj), 0.0, atol=1e-6
    )
    np.testing.assert_allclose(
        J.stats_pooling_hidden_loss(
            f32(tf), f32(tf), student_stats=f32(stats(tf)), teacher_stats=f32(stats(tf))
        ),
        0.0,
        atol=1e-7,
    )
    with pytest.raises(ValueError, match="projection"):
        L.stats_pooling_hidden_loss(f32(sf), f32(tf))


def test_align_time_float64_weights_under_x64():
    x = rng(21).normal(size=(2, 3, 4))
    with jax.enable_x64(True):
        for method in ("interpolate", "mean", "repeat", "truncate"):
            w = L.time_alignment_matrix(3, 7 if method != "truncate" else 2, method)
            assert w.dtype == jnp.float64, (method, w.dtype)
        assert L.time_alignment_matrix(3, 7, dtype=jnp.float32).dtype == jnp.float32
        got = L.align_time(jnp.asarray(x), 7, "interpolate")
        assert got.dtype == jnp.float64
        # float32-rounded weights (scale 3/7) would be off by ~1e-8
        np.testing.assert_allclose(got, _ref.interp_linear(x, 7), rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(
            L.align_time(jnp.asarray(x), 2, "mean"),
            np.stack([x[:, 0:2].mean(1), x[:, 1:3].mean(1)], 1),
            rtol=1e-13,
        )
    assert L.time_alignment_matrix(3, 7).dtype == jnp.float32  # without x64: float32
    assert L.align_time(jnp.asarray(x, jnp.bfloat16), 7).dtype == jnp.bfloat16


def test_align_time_validates_the_method_at_equal_lengths():
    x = f32(rng(22).normal(size=(2, 5, 3)))
    with pytest.raises(ValueError, match="method must be"):
        L.align_time(x, 5, "nearest")
    with pytest.raises(ValueError, match="method must be"):
        L.time_alignment_matrix(5, 5, "nearest")
    with pytest.raises(ValueError, match="method must be"):
        L.stats_pooling_hidden_loss(x, x, align="nearest")


@pytest.mark.parametrize("metric", ["mse", "cosine"])
def test_stats_pooling_hidden_loss_frame_mask(metric):
    r = rng(23)
    sf, tf, w = r.normal(size=(3, 6, 4)), r.normal(size=(3, 6, 5)), r.normal(size=(4, 5))
    loss = jax.jit(functools.partial(L.stats_pooling_hidden_loss, metric=metric))
    base = np.asarray(loss(f32(sf), f32(tf), projection=f32(w)))
    # pad to 9 frames with garbage (NaN in the student, huge values in the teacher) under
    # mask 0; example 1 is shorter (4 valid frames): its loss is that of its 4-frame sequence
    pad = lambda x, v: np.concatenate([x, np.full((3, 3, x.shape[-1]), v)], 1)  # noqa: E731
    sg, tg = pad(sf, np.nan), pad(tf, 1e6)
    mask = np.zeros((3, 9))
    mask[:, :6] = 1
    mask[1, 4:] = 0
    sg[1, 4:6], tg[1, 4:6] = -1e5, 7e5
    got = np.asarray(loss(f32(sg), f32(tg), projection=f32(w), mask=f32(mask)))
    short = loss(f32(sf[1:2, :4]), f32(tf[1:2, :4]), projection=f32(w))
    np.testing.assert_allclose(got[[0, 2]], base[[0, 2]], rtol=1e-5)
    np.testing.assert_allclose(got[1], short[0], rtol=1e-5)
    # all-ones mask == no mask; gradients finite despite NaN garbage
    ones = loss(f32(sf), f32(tf), projection=f32(w), mask=jnp.ones((3, 6)))
    np.testing.assert_allclose(ones, base, rtol=1e-6)
    g_s, g_w = jax.jit(
        jax.grad(
            lambda a, ww: loss(a, f32(tg), projection=ww, mask=f32(mask)).sum(), argnums=(0, 1)
        )
    )(f32(sg), f32(w))
    assert np.all(np.isfinite(g_s)) and np.all(np.isfinite(g_w))
    with pytest.raises(ValueError, match=r"mask must have shape \[B, T\]"):
        L.stats_pooling_hidden_loss(f32(sg), f32(tg), projection=f32(w), mask=f32(mask[:, :6]))


# ---------------------------------------------------------------- temporal
def _attn(seed, L_=3, B=2, H=2, N=6):
    z = rng(seed).normal(size=(L_, B, H, N, N))
    return np.exp(z) / np.exp(z).sum(-1, keepdims=True)


def test_attention_rollout_vs_numpy_and_rows_sum_to_one():
    a = _attn(4)
    got = J.attention_rollout(f32(a))
    np.testing.assert_allclose(got, _ref.rollout(a), rtol=RTOL, atol=1e-7)
    np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-6)
    # one layer, one head, no residual: rollout is the attention itself
    np.testing.assert_allclose(
        J.attention_rollout(f32(a[:1, :, :1]), add_residual=False), a[0, :, 0], rtol=1e-6
    )
    with pytest.raises(ValueError, match=r"\[L, B, H, N, N\]"):
        L.attention_rollout(f32(a[0]))


def np_temporal_kd(student_w, attn, T=1.0, direction="teacher_student"):
    r = _ref.rollout(attn)[:, 0, 1:]
    r = r / r.sum(-1, keepdims=True)
    t = _ref.interp_linear(r[:, :, None], student_w.shape[1])[:, :, 0]
    t = t / t.sum(-1, keepdims=True)
    t = t ** (1 / T) / (t ** (1 / T)).sum(-1, keepdims=True)
    s = student_w ** (1 / T) / (student_w ** (1 / T)).sum(-1, keepdims=True)
    p, q = (t, s) if direction == "teacher_student" else (s, t)
    return (p * np.log(p / q)).sum(-1)


@pytest.mark.parametrize("direction", ["teacher_student", "student_teacher"])
def test_temporal_attention_kd_vs_numpy(direction):
    a = _attn(5)
    z = rng(6).normal(size=(2, 9))
    w = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    for T in (1.0, 2.0):
        got = J.temporal_attention_kd(f32(w), f32(a), temperature=T, direction=direction)
        np.testing.assert_allclose(got, np_temporal_kd(w, a, T, direction), rtol=1e-4)
    # logits input equals weights input; a precomputed rollout equals raw attention
    got_logits = J.temporal_attention_kd(
        f32(z), f32(a), student_is_logits=True, direction=direction
    )
    np.testing.assert_allclose(got_logits, np_temporal_kd(w, a, 1.0, direction), rtol=1e-4)
    got_roll = J.temporal_attention_kd(f32(w), J.attention_rollout(f32(a)), direction=direction)
    np.testing.assert_allclose(got_roll, np_temporal_kd(w, a, 1.0, direction), rtol=1e-4)


def test_temporal_attention_kd_zero_when_student_matches_target():
    a = _attn(7)
    r = _ref.rollout(a)[:, 0, 1:]
    r = r / r.sum(-1, keepdims=True)  # N - 1 = 5 frames, student T = 5: no interpolation change
    np.testing.assert_allclose(J.temporal_attention_kd(f32(r), f32(a)), 0.0, atol=1e-6)
    with pytest.raises(ValueError, match="teacher_attention"):
        L.temporal_attention_kd(f32(r), f32(a[0, 0, :1]))


def test_rollout_frame_distribution_cls_row_and_mean_rows_vs_numpy():
    a = _attn(11, N=7)
    r = _ref.rollout(a)
    want_cls = r[:, 2, [0, 1, 3, 4, 5, 6]]
    want_cls = want_cls / want_cls.sum(-1, keepdims=True)
    np.testing.assert_allclose(J.rollout_frame_distribution(f32(a), cls_index=2), want_cls, rtol=1e-5)
    want_mean = r.mean(1) / r.mean(1).sum(-1, keepdims=True)  # no class token: all N tokens
    got = J.rollout_frame_distribution(f32(a), cls_index=None)
    np.testing.assert_allclose(got, want_mean, rtol=1e-5)
    np.testing.assert_allclose(J.rollout_frame_distribution(J.attention_rollout(f32(a))), r[:, 0, 1:]
                               / r[:, 0, 1:].sum(-1, keepdims=True), rtol=1e-5)
    with pytest.raises(ValueError, match="cls_index=7"):
        L.rollout_frame_distribution(f32(a), cls_index=7)


def test_temporal_attention_kd_with_cached_frame_distribution_equals_raw_attention():
    # the cache stage stores rollout_frame_distribution once per clip; the loss on it must equal
    # the loss on the raw [L, B, H, N, N] attention (student T = 9 != N - 1 = 5: interpolated)
    a = _attn(12)
    z = rng(13).normal(size=(2, 9))
    cached = np.asarray(J.rollout_frame_distribution(f32(a)))
    for T in (1.0, 2.0):
        got = J.temporal_attention_kd(f32(z), f32(cached), student_is_logits=True, temperature=T)
        w = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
        np.testing.assert_allclose(got, np_temporal_kd(w, a, T), rtol=1e-4)
    # no class token (wav2vec 2.0): the mean-row target, N = 6 frames interpolated to 9
    r = _ref.rollout(a).mean(1)
    t = _ref.interp_linear((r / r.sum(-1, keepdims=True))[:, :, None], 9)[:, :, 0]
    t = t / t.sum(-1, keepdims=True)
    w = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    got = J.temporal_attention_kd(f32(z), f32(a), student_is_logits=True, cls_index=None)
    np.testing.assert_allclose(got, (t * np.log(t / w)).sum(-1), rtol=1e-4)


# ---------------------------------------------------------------- inversion
def test_bn_statistics_loss_vs_numpy():
    r = rng(8)
    x1, x2 = r.normal(size=(4, 5, 3)), r.normal(size=(4, 2, 6))
    rm1, rv1, rm2, rv2 = r.normal(size=3), r.random(3), r.normal(size=6), r.random(6)

    def term(x, rm, rv):
        mu, var = x.reshape(-1, x.shape[-1]).mean(0), x.reshape(-1, x.shape[-1]).var(0)
        return np.linalg.norm(mu - rm) + np.linalg.norm(var - rv)

    ref = 10.0 * term(x1, rm1, rv1) + term(x2, rm2, rv2)
    st = {
        "bn0": (*L.bn_batch_moments(f32(x1)), f32(rm1), f32(rv1)),
        "bn1": (*L.bn_batch_moments(f32(x2)), f32(rm2), f32(rv2)),
    }
    np.testing.assert_allclose(J.bn_statistics_loss(st), ref, rtol=RTOL)
    np.testing.assert_allclose(
        J.bn_statistics_loss(list(st.values()), first_layer_weight=1.0),
        ref - 9 * term(x1, rm1, rv1),
        rtol=RTOL,
    )
    mu, var = L.bn_batch_moments(f32(x1))
    assert float(J.bn_statistics_loss([(mu, var, mu, var)])) == 0.0
    with pytest.raises(ValueError, match="at least one"):
        L.bn_statistics_loss([])


def np_infonce(z1, z2, tau, bank=None, symmetric=True):
    def n(z):
        return z / np.linalg.norm(z, axis=-1, keepdims=True)

    def one(a, p):
        lg = a @ p.T / tau
        if bank is not None:
            lg = np.concatenate([lg, a @ n(bank).T / tau], -1)
        lse = np.log(np.exp(lg).sum(-1))
        return (lse - (a * p).sum(-1) / tau).mean()

    u, v = n(z1), n(z2)
    return 0.5 * (one(u, v) + one(v, u)) if symmetric else one(u, v)


def test_feature_invariant_contrastive_vs_numpy_and_mask():
    r = rng(9)
    z1, z2, bank = r.normal(size=(5, 4)), r.normal(size=(5, 4)), r.normal(size=(7, 4))
    np.testing.assert_allclose(
        J.feature_invariant_contrastive(f32(z1), f32(z2), temperature=0.5),
        np_infonce(z1, z2, 0.5),
        rtol=RTOL,
    )
    np.testing.assert_allclose(
        J.feature_invariant_contrastive(
            f32(z1), f32(z2), temperature=0.5, memory_bank=f32(bank), symmetric=False
        ),
        np_infonce(z1, z2, 0.5, bank, symmetric=False),
        rtol=RTOL,
    )
    base = J.feature_invariant_contrastive(f32(z1), f32(z2))
    g1 = jnp.concatenate([f32(z1), jnp.full((2, 4), jnp.nan)])
    g2 = jnp.concatenate([f32(z2), jnp.ones((2, 4))])
    np.testing.assert_allclose(
        J.feature_invariant_contrastive(g1, g2, mask=jnp.array([1] * 5 + [0, 0])), base, rtol=1e-6
    )


def test_priors_vs_numpy():
    x = rng(10).normal(size=(2, 5, 4))
    d = [
        x[:, 1:] - x[:, :-1],
        x[:, :, 1:] - x[:, :, :-1],
        x[:, 1:, 1:] - x[:, :-1, :-1],
        x[:, 1:, :-1] - x[:, :-1, 1:],
    ]
    ref_l2 = sum(np.sqrt((e**2).sum((1, 2))) for e in d)
    ref_l1 = sum(np.abs(e).mean((1, 2)) for e in d)
    np.testing.assert_allclose(J.total_variation(f32(x)), ref_l2, rtol=RTOL)
    np.testing.assert_allclose(J.total_variation(f32(x), norm="l1"), ref_l1, rtol=RTOL)
    np.testing.assert_allclose(
        J.total_variation(f32(x), diagonals=False),
        sum(np.sqrt((e**2).sum((1, 2))) for e in d[:2]),
        rtol=RTOL,
    )
    np.testing.assert_allclose(J.total_variation(jnp.ones((2, 5, 4))), 0.0)
    np.testing.assert_allclose(J.l2_prior(f32(x)), np.sqrt((x**2).sum((1, 2))), rtol=RTOL)
    np.testing.assert_allclose(J.l2_prior(f32(x), squared=True), (x**2).sum((1, 2)), rtol=RTOL)


def test_adversarial_js_vs_numpy_and_bounds():
    r = rng(11)
    s, t = 3 * r.normal(size=(4, 6)), 3 * r.normal(size=(4, 6))
    p = np.exp(s) / np.exp(s).sum(-1, keepdims=True)
    q = np.exp(t) / np.exp(t).sum(-1, keepdims=True)
    m = (p + q) / 2
    ref = 0.5 * (p * np.log(p / m)).sum(-1) + 0.5 * (q * np.log(q / m)).sum(-1)
    got = J.adversarial_js(f32(s), f32(t))
    np.testing.assert_allclose(got, ref, rtol=RTOL)
    np.testing.assert_allclose(J.adversarial_js(f32(s), f32(s)), 0.0, atol=1e-6)
    # symmetric, and at most ln 2 (disjoint supports)
    np.testing.assert_allclose(J.adversarial_js(f32(t), f32(s)), got, rtol=1e-6)
    far = J.adversarial_js(jnp.array([[100.0, 0.0]]), jnp.array([[0.0, 100.0]]))
    assert float(far[0]) == pytest.approx(math.log(2), rel=1e-5)


def _js_ref64(s, t, temperature=1.0):
    """float64 NumPy JS divergence of softmax(s/T) and softmax(t/T), mixture in log space."""

    def log_softmax(z):
        z = np.asarray(z, np.float64) / temperature
        mx = z.max(-1, keepdims=True)
        return z - mx - np.log(np.exp(z - mx).sum(-1, keepdims=True))

    lp, lq = log_softmax(s), log_softmax(t)
    lm = np.logaddexp(lp, lq) - np.log(2.0)
    return 0.5 * (np.exp(lp) * (lp - lm)).sum(-1) + 0.5 * (np.exp(lq) * (lq - lm)).sum(-1)


def test_adversarial_js_finite_when_a_class_underflows_in_both():
    # logit gaps of 200: class 2 (and more) has probability ~e^-200, 0 in float32, in both
    s = np.array([[200.0, 0.0, 0.0, -10.0], [0.0, 200.0, 0.0, 150.0], [3.0, 1.0, -200.0, 2.0]])
    t = np.array([[0.0, 200.0, 0.0, -10.0], [0.0, 200.0, 0.0, 0.0], [1.0, 3.0, -200.0, 0.0]])
    got = L.adversarial_js(f32(s), f32(t))
    assert np.all(np.isfinite(got)), got
    np.testing.assert_allclose(got, _js_ref64(s, t), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        L.adversarial_js(f32(s), f32(t), temperature=4.0),
        _js_ref64(s, t, 4.0),
        rtol=1e-5,
        atol=1e-7,
    )
    g_s, g_t = jax.grad(lambda a, b: L.adversarial_js(a, b).sum(), argnums=(0, 1))(f32(s), f32(t))
    assert np.all(np.isfinite(g_s)) and np.all(np.isfinite(g_t)), (g_s, g_t)
    with jax.enable_x64(True):  # the float32 gradient matches the float64 one
        g64 = jax.grad(lambda a: L.adversarial_js(a, jnp.asarray(t, jnp.float64)).sum())(
            jnp.asarray(s, jnp.float64)
        )
    np.testing.assert_allclose(g_s, g64, rtol=1e-4, atol=1e-6)
