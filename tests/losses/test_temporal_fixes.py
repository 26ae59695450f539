"""Temporal KD fixes (issue #26) vs an independent NumPy rollout: the head fusion reaches the
live target, and the first token's whole rollout row (N entries, wav2vec 2.0) is a target."""

import jax.numpy as jnp
import numpy as np
import pytest

from kdjax import losses as L
from tests.losses import _ref
from tests.losses._ref import J

f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
FUSE = {"mean": np.mean, "max": np.max, "min": np.min}


def _attn(seed, L_=3, B=2, H=3, N=6):
    z = np.random.default_rng(seed).normal(size=(L_, B, H, N, N)) * 2.0
    return np.exp(z) / np.exp(z).sum(-1, keepdims=True)


def np_rollout(attn, fusion="mean"):
    """Abnar & Zuidema rollout, float64, one example and one layer at a time."""
    n_layers, b_size, _, n, _ = attn.shape
    out = np.zeros((b_size, n, n))
    for b in range(b_size):
        r = np.eye(n)
        for layer in range(n_layers):
            a = FUSE[fusion](attn[layer, b], axis=0) + np.eye(n)
            r = (a / a.sum(-1, keepdims=True)) @ r
        out[b] = r
    return out


def np_target(attn, t_student, *, fusion="mean", row="cls"):
    """The teacher's frame distribution: row 0 without (cls) or with (first) its own entry."""
    r = np_rollout(attn, fusion)[:, 0, 1:] if row == "cls" else np_rollout(attn, fusion)[:, 0, :]
    r = r / r.sum(-1, keepdims=True)
    t = _ref.interp_linear(r[:, :, None], t_student)[:, :, 0]
    return t / t.sum(-1, keepdims=True)


def np_kl(t, z):
    log_s = z - z.max(-1, keepdims=True)
    log_s = log_s - np.log(np.exp(log_s).sum(-1, keepdims=True))
    return (t * (np.log(t) - log_s)).sum(-1)


def test_np_rollout_mean_equals_the_shared_reference():
    a = _attn(0)
    np.testing.assert_allclose(np_rollout(a, "mean"), _ref.rollout(a), rtol=1e-12)


@pytest.mark.parametrize("fusion", ["max", "min"])
def test_live_target_follows_head_fusion(fusion):
    # target=live: the loss rolls the raw [L, B, H, N, N] attention out itself, so the head
    # fusion must reach it (before the fix it was silently the mean)
    a = _attn(1)
    z = np.random.default_rng(2).normal(size=(2, 9))
    want = np_kl(np_target(a, 9, fusion=fusion), z)
    got = J.temporal_attention_kd(f32(z), f32(a), student_is_logits=True, head_fusion=fusion)
    np.testing.assert_allclose(got, want, rtol=1e-4)
    mean = np_kl(np_target(a, 9, fusion="mean"), z)
    assert np.abs(want - mean).max() > 1e-2  # the test can tell the fusions apart
    # the same target as the cached path's rollout_frame_distribution(..., head_fusion=fusion)
    cached = J.rollout_frame_distribution(f32(a), head_fusion=fusion)
    np.testing.assert_allclose(
        J.temporal_attention_kd(f32(z), cached, student_is_logits=True), want, rtol=1e-4
    )


def test_first_token_row_keeps_all_n_entries():
    a = _attn(3, N=7)
    r = np_rollout(a)
    want = r[:, 0, :] / r[:, 0, :].sum(-1, keepdims=True)  # N = 7 entries, token 0 kept
    got = J.rollout_frame_distribution(f32(a), cls_index=0, drop_query=False)
    assert got.shape == (2, 7)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # another query token: its row whole
    got3 = J.rollout_frame_distribution(f32(a), cls_index=3, drop_query=False, head_fusion="max")
    r3 = np_rollout(a, "max")[:, 3, :]
    np.testing.assert_allclose(got3, r3 / r3.sum(-1, keepdims=True), rtol=1e-5)
    # in the loss (live target): interpolated from N = 7 to the student's 11 frames
    z = np.random.default_rng(4).normal(size=(2, 11))
    got_kd = J.temporal_attention_kd(f32(z), f32(a), student_is_logits=True, drop_query=False)
    np.testing.assert_allclose(got_kd, np_kl(np_target(a, 11, row="first"), z), rtol=1e-4)
    # differs from the class-token convention (token 0's own entry dropped, N - 1 entries)
    cls_kd = np_kl(np_target(a, 11, row="cls"), z)
    assert np.abs(np.asarray(got_kd) - cls_kd).max() > 1e-3
    with pytest.raises(ValueError, match="drop_query"):
        L.rollout_frame_distribution(f32(a), cls_index=None, drop_query=False)
