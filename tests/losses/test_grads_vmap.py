"""Every non-logit loss: gradients finite and equal to finite differences (float64), jit, vmap == loop.

(The logit losses have the same checks in test_logits.py.)
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from tests.losses._ref import J

B, T, D = 4, 5, 3

# Each case: fn(x, y) -> array, with x the differentiated (student / synthetic) input [B, T, D]
# and y a fixed second input [B, T, D]. Teacher inputs are derived from y, so stop_gradient on
# the teacher never hides a dependence on x from the finite differences.
_mask = jnp.array([1, 1, 1, 0])


def _attn_from(y):
    # [L=2, B, H=1, N=T+1... ] built from y: softmax over a [2, B, 1, 4, 4] slice
    z = jnp.concatenate([y, y[:, :, :1]], -1)[:, :4, :4]  # [B, 4, 4]
    return jax.nn.softmax(jnp.stack([z, 0.5 * z])[:, :, None], axis=-1)


CASES = {
    "similarity_preserving": lambda x, y: J.similarity_preserving(x, y, mask=_mask),
    "similarity_preserving_l1_features": lambda x, y: J.similarity_preserving(
        x, y, row_norm="l1", normalize="features"
    ),
    "intra_utterance_sp": lambda x, y: J.intra_utterance_sp(x, y[:, :3]),
    "distance_correlation": lambda x, y: J.distance_correlation(x, y[:, :2], mask=_mask),
    "cosine_gram_difference": lambda x, y: J.cosine_gram_difference(x, 1.0 + y),
    "rkd": lambda x, y: J.rkd(x[:, 0], y[:, 0], mask=_mask),
    "hint_l2": lambda x, y: J.hint_l2(x, y),
    "attention_transfer": lambda x, y: J.attention_transfer(x, y, convention="paper"),
    "stats_pooling_hidden_loss": lambda x, y: J.stats_pooling_hidden_loss(x, y, metric="cosine"),
    "align_time": lambda x, y: J.align_time(x, t_out=7, method="interpolate"),
    "attention_rollout": lambda x, y: J.attention_rollout(
        jax.nn.softmax(jnp.stack([x[:, :3, :3], y[:, :3, :3]])[:, :, None], -1)
    ),
    "temporal_attention_kd": lambda x, y: J.temporal_attention_kd(
        x[..., 0], _attn_from(y), student_is_logits=True
    ),
    "bn_statistics_loss": lambda x, y: J.bn_statistics_loss(
        [
            (*J.bn_batch_moments(x), y[0, 0], 1.0 + y[1, 0] ** 2),
            (*J.bn_batch_moments(x**2), y[2, 0], y[3, 0] ** 2),
        ]
    ),
    "feature_invariant_contrastive": lambda x, y: J.feature_invariant_contrastive(
        x[:, 0], x[:, 1], memory_bank=y[:, 0], mask=_mask
    ),
    "total_variation": lambda x, y: J.total_variation(x),
    "l2_prior": lambda x, y: J.l2_prior(x),
    "adversarial_js": lambda x, y: J.adversarial_js(x[:, 0], y[:, 0]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_grads_match_finite_differences(name):
    fn = CASES[name]
    r = np.random.default_rng(0)
    with jax.enable_x64(True):
        x, y = jnp.asarray(r.normal(size=(B, T, D))), jnp.asarray(r.normal(size=(B, T, D)))
        f = jax.jit(lambda x: jnp.sum(fn(x, y)))
        g = jax.grad(f)(x)
        assert np.all(np.isfinite(g)) and np.any(g != 0)
        check_grads(f, (x,), order=1, modes=("rev",), atol=1e-4, rtol=1e-4)


def test_vmap_equals_loop():
    # All cases in one program each way (one compile instead of 2 per case: the suite must stay fast on 2 cores).
    r = np.random.default_rng(1)
    x = jnp.asarray(r.normal(size=(2, B, T, D)), jnp.float32)
    y = jnp.asarray(r.normal(size=(2, B, T, D)), jnp.float32)
    all_cases = lambda x, y: {k: fn(x, y) for k, fn in CASES.items()}  # noqa: E731
    got = jax.jit(jax.vmap(all_cases))(x, y)
    one = jax.jit(all_cases)
    ref = [one(x[i], y[i]) for i in range(2)]
    for k in CASES:
        np.testing.assert_allclose(
            got[k], jnp.stack([ref[0][k], ref[1][k]]), rtol=2e-5, atol=1e-6, err_msg=k
        )
