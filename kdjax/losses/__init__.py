"""kdjax.losses: pure-jnp distillation losses (imports only jax and the standard library).

Per-example losses return ``[B]`` and take hyperparameters as keyword-only arguments;
batch-level (relational) losses return a scalar and take an optional ``mask [B]``.
Labels are probabilities ``[B, C]``. ``masked_mean`` is the one reduction.
See docs/losses.md for the table of formulas, papers, conventions and recipes.
"""

from kdjax.losses._utils import masked_mean
from kdjax.losses.features import (
    align_time,
    attention_transfer,
    hint_l2,
    stats_pool,
    stats_pooling_hidden_loss,
    time_alignment_matrix,
)
from kdjax.losses.inversion import (
    adversarial_js,
    bn_batch_moments,
    bn_statistics_loss,
    feature_invariant_contrastive,
    l2_prior,
    total_variation,
)
from kdjax.losses.logits import kd_bernoulli_kl, kd_kl, mutual_kl, sigmoid_xent, softmax_xent
from kdjax.losses.relational import (
    cosine_gram_difference,
    distance_correlation,
    intra_utterance_sp,
    rkd,
    similarity_preserving,
)
from kdjax.losses.temporal import (
    attention_rollout,
    rollout_frame_distribution,
    temporal_attention_kd,
)

__all__ = [
    "masked_mean",
    # logits
    "softmax_xent",
    "sigmoid_xent",
    "kd_kl",
    "kd_bernoulli_kl",
    "mutual_kl",
    # relational
    "similarity_preserving",
    "intra_utterance_sp",
    "distance_correlation",
    "cosine_gram_difference",
    "rkd",
    # features
    "align_time",
    "time_alignment_matrix",
    "hint_l2",
    "attention_transfer",
    "stats_pool",
    "stats_pooling_hidden_loss",
    # temporal
    "attention_rollout",
    "rollout_frame_distribution",
    "temporal_attention_kd",
    # inversion
    "bn_batch_moments",
    "bn_statistics_loss",
    "feature_invariant_contrastive",
    "total_variation",
    "l2_prior",
    "adversarial_js",
]
