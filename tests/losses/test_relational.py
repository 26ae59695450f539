"""Relational losses vs NumPy references, identities, invariances, masking."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kdjax import losses as L
from tests.losses import _ref
from tests.losses._ref import J

RTOL = 1e-5


def _data(seed=0, b=5, t=6, ds=4, tt=3, dt=7):
    r = np.random.default_rng(seed)
    return r.normal(size=(b, t, ds)), r.normal(size=(b, tt, dt))


f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731


# ---------------------------------------------------------------- SP
@pytest.mark.parametrize("row_norm", ["l2", "l1"])
@pytest.mark.parametrize("normalize", ["gram", "features"])
def test_sp_vs_numpy(row_norm, normalize):
    s, t = _data(1)
    got = jax.jit(
        lambda a, b: L.similarity_preserving(a, b, row_norm=row_norm, normalize=normalize)
    )(f32(s), f32(t))
    np.testing.assert_allclose(got, _ref.sp(s, t, row_norm, normalize), rtol=RTOL)


def test_sp_l1_differs_from_l2():
    # The torchdistill 1.1.5 bug (L1 rows) must be visible: if both options collapsed to one
    # implementation this would fail.
    s, t = _data(2)
    l2 = float(J.similarity_preserving(f32(s), f32(t)))
    l1 = float(J.similarity_preserving(f32(s), f32(t), row_norm="l1"))
    assert abs(l2 - l1) > 0.1 * l2


def test_sp_identities_scale_invariance_and_masking():
    s, t = _data(3)
    s, t = f32(s), f32(t)
    assert float(J.similarity_preserving(s, s)) == pytest.approx(0.0, abs=1e-7)
    base = J.similarity_preserving(s, t)
    np.testing.assert_allclose(J.similarity_preserving(3.0 * s, 0.1 * t), base, rtol=1e-5)
    garbage = jnp.concatenate([s, 1e3 * jnp.ones_like(s[:2])])
    garbage_t = jnp.concatenate([t, jnp.full_like(t[:2], jnp.nan)])
    mask = jnp.array([1] * 5 + [0, 0])
    np.testing.assert_allclose(
        J.similarity_preserving(garbage, garbage_t, mask=mask), base, rtol=1e-6
    )
    g = jax.grad(lambda x: J.similarity_preserving(x, garbage_t, mask=mask))(garbage)
    assert np.all(np.isfinite(g)) and np.all(np.asarray(g[5:]) == 0)


# ---------------------------------------------------------------- IUSP
@pytest.mark.parametrize("align", ["interpolate", "repeat"])
def test_iusp_vs_numpy(align):
    s, t = _data(4)
    got = jax.jit(lambda a, b: L.intra_utterance_sp(a, b, align=align))(f32(s), f32(t))
    np.testing.assert_allclose(got, _ref.iusp(s, t, align), rtol=RTOL)


def test_iusp_identities():
    s, t = _data(5)
    s, t = f32(s), f32(t)
    np.testing.assert_allclose(J.intra_utterance_sp(s, s), 0.0, atol=1e-7)
    # equal features up to a linear map that preserves the Gram up to scale (orthogonal * c)
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))
    np.testing.assert_allclose(J.intra_utterance_sp(s, 2.5 * s @ f32(q)), 0.0, atol=1e-6)
    base = J.intra_utterance_sp(s, t)
    np.testing.assert_allclose(J.intra_utterance_sp(7.0 * s, 0.2 * t), base, rtol=1e-5)
    one = J.intra_utterance_sp(s[2:3], t[2:3])
    np.testing.assert_allclose(one[0], base[2], rtol=1e-6)
    # frame mask: padded frames (garbage) of a student with extra frames change nothing
    s_pad = jnp.concatenate([s, jnp.full_like(s[:, :2], 1e4)], axis=1)  # T 6 -> 8
    t_al = L.align_time(t, 6)  # teacher already at 6 frames, pad it too
    t_pad = jnp.concatenate([t_al, jnp.full_like(t_al[:, :2], -5.0)], axis=1)
    fm = jnp.concatenate([jnp.ones((5, 6)), jnp.zeros((5, 2))], axis=1)
    np.testing.assert_allclose(J.intra_utterance_sp(s_pad, t_pad, frame_mask=fm), base, rtol=1e-5)


def test_iusp_errors():
    s, t = _data(6)
    with pytest.raises(ValueError, match=r"student must have shape \[B, T, D_s\]"):
        J.intra_utterance_sp(f32(s[:, 0]), f32(t))
    with pytest.raises(ValueError, match="batch size"):
        J.intra_utterance_sp(f32(s), f32(t[:2]))
    with pytest.raises(ValueError, match="frame_mask"):
        J.intra_utterance_sp(f32(s), f32(t), frame_mask=jnp.ones(5))


# ---------------------------------------------------------------- distance correlation
def test_dcor_vs_numpy_with_repeat_alignment():
    s, t = _data(7, b=6, t=7, tt=3)
    got = jax.jit(L.distance_correlation)(f32(s), f32(t))
    np.testing.assert_allclose(got, _ref.dcor_loss(s, _ref.repeat_truncate(t, 7)), rtol=RTOL)
    # 2-D inputs (EAsT's time-mean mode) are a single time step
    got2 = J.distance_correlation(f32(s.mean(1)), f32(t.mean(1)))
    np.testing.assert_allclose(
        got2, _ref.dcor_loss(s.mean(1)[:, None], t.mean(1)[:, None]), rtol=RTOL
    )


def test_dcor_identity_and_invariances():
    r = np.random.default_rng(8)
    y = r.normal(size=(6, 4, 5))
    q, _ = np.linalg.qr(r.normal(size=(5, 5)))
    with jax.enable_x64(True):  # identities to 1e-6 need more than float32's cancellation margin
        yj = jnp.asarray(y)
        assert float(J.distance_correlation(yj, yj)) == pytest.approx(0.0, abs=1e-6)
        assert float(J.distance_correlation(3.0 * yj @ jnp.asarray(q) + 1.0, yj)) == pytest.approx(
            0.0, abs=1e-6
        )
        x = jnp.asarray(r.normal(size=(6, 4, 3)))
        base = float(J.distance_correlation(x, yj))
        assert float(J.distance_correlation(0.5 * x, 4.0 * yj @ jnp.asarray(q))) == pytest.approx(
            base, rel=1e-6
        )


def test_dcor_scale_invariance_is_approximate_and_exact_as_eps_vanishes():
    """The docstring's statement: approximately scale invariant (the eps terms set a scale),
    exact when eps = dist_eps = 0."""
    doc = " ".join(L.distance_correlation.__doc__.split())
    assert "approximately scale invariant" in doc and "exact only as ``eps, dist_eps -> 0``" in doc
    s, t = _data(12, b=6, t=3, tt=3)
    s, t = f32(s), f32(t)
    base = float(J.distance_correlation(s, t))
    # O(1)-scale features: rescaling changes the default-eps value by far less than 1e-4
    for c in (0.1, 10.0, 1e3):
        assert float(J.distance_correlation(c * s, t)) == pytest.approx(base, abs=1e-4)
    # tiny features: the eps terms dominate and the loss moves towards 1 (not invariant)
    tiny = float(J.distance_correlation(1e-4 * s, 1e-4 * t))
    assert tiny > base + 0.1
    # eps = dist_eps = 0: invariant at every scale, to float32 rounding
    exact = dict(eps=0.0, dist_eps=0.0)
    ref = float(J.distance_correlation(s, t, **exact))
    for c in (1e-4, 1e-2, 10.0, 1e3):
        assert float(J.distance_correlation(c * s, t, **exact)) == pytest.approx(ref, rel=1e-4)
        assert float(J.distance_correlation(c * s, c * t, **exact)) == pytest.approx(ref, rel=1e-4)


def test_dcor_masking():
    s, t = _data(9, b=5, t=4, tt=4)
    s, t = f32(s), f32(t)
    base = J.distance_correlation(s, t)
    s_g = jnp.concatenate([s, jnp.full_like(s[:3], jnp.nan)])
    t_g = jnp.concatenate([t, 100.0 * jnp.ones_like(t[:3])])
    mask = jnp.array([1] * 5 + [0] * 3)
    np.testing.assert_allclose(J.distance_correlation(s_g, t_g, mask=mask), base, rtol=1e-5)
    g = jax.grad(lambda x: J.distance_correlation(x, t_g, mask=mask))(s_g)
    assert np.all(np.isfinite(g))


# ---------------------------------------------------------------- cosine Gram, RKD
def test_cosine_gram_difference_vs_numpy_and_mask():
    s, t = _data(10, t=6, tt=3)
    got = J.cosine_gram_difference(f32(s), f32(t))
    np.testing.assert_allclose(got, _ref.cos_gram(s, _ref.repeat_truncate(t, 6)), rtol=RTOL)
    t6 = _ref.repeat_truncate(t, 6)
    assert float(J.cosine_gram_difference(f32(s), f32(s))) == pytest.approx(0.0, abs=1e-7)
    mask = jnp.array([1, 1, 1, 1, 1, 0])
    s_g = jnp.concatenate([f32(s), jnp.ones_like(f32(s[:1]))])
    t_g = jnp.concatenate([f32(t6), -jnp.ones_like(f32(t6[:1]))])
    np.testing.assert_allclose(J.cosine_gram_difference(s_g, t_g, mask=mask), got, rtol=1e-6)


def test_rkd_vs_numpy_and_mask():
    r = np.random.default_rng(11)
    s, t = r.normal(size=(6, 4)), r.normal(size=(6, 9))
    got = jax.jit(L.rkd)(f32(s), f32(t))
    np.testing.assert_allclose(got, _ref.rkd(s, t), rtol=RTOL)
    np.testing.assert_allclose(
        J.rkd(f32(s), 3.0 * f32(s)), 0.0, atol=1e-6
    )  # RKD-D is scale-free, RKD-A too
    s_g = jnp.concatenate([f32(s), jnp.full((2, 4), 9.0)])
    t_g = jnp.concatenate([f32(t), jnp.full((2, 9), jnp.nan)])
    np.testing.assert_allclose(J.rkd(s_g, t_g, mask=jnp.array([1] * 6 + [0, 0])), got, rtol=1e-5)


def test_batch_losses_reject_bad_mask_and_batch():
    s, t = _data(12)
    for fn in (L.similarity_preserving, L.distance_correlation, L.cosine_gram_difference):
        with pytest.raises(ValueError, match="mask"):
            fn(f32(s), f32(t), mask=jnp.ones(3))
    with pytest.raises(ValueError, match="batch"):
        J.distance_correlation(f32(s), f32(t[:3]))
