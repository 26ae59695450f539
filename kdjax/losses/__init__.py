"""kdjax.losses: pure-jnp distillation losses (imports only jax and the standard library).

Per-example losses return ``[B]`` and take hyperparameters as keyword-only arguments;
batch-level (relational) losses return a scalar and take an optional ``mask [B]``.
Labels are probabilities ``[B, C]``. ``masked_mean`` is the one reduction.
See docs/losses.md for the table of formulas, papers, conventions and recipes.
"""

from kdjax.losses._utils import masked_mean
from kdjax.losses.logits import kd_bernoulli_kl, kd_kl, mutual_kl, sigmoid_xent, softmax_xent

__all__ = [
    "masked_mean",
    "softmax_xent",
    "sigmoid_xent",
    "kd_kl",
    "kd_bernoulli_kl",
    "mutual_kl",
]
