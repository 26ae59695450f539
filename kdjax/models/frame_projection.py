"""A learnable frame-wise projection with statistics pooling (a training-only KD adapter).

For FRAMI's stage 2 (Kang et al., ICASSP 2023): the student's hidden states before and
after statistics pooling are compared with the teacher's, whose width usually differs. This
module maps the student's frames `[B, T, D_s]` to the teacher's width `D_t` with one linear
layer (per frame, shared over time) and pools the projected frames with mean+std statistics,
so `stats_pooling_hidden_loss` can compare `frames` and `stats` directly. It is meant to be a
`deploy=False` module (trained with the student, not part of the deployed model): e.g.

    c.models.proj = dict(model="frame_projection", kw=dict(width=128),
                         input="student.feats.frames", deploy=False)

The form of the adapter is not published (PAPERS.md section 5): a linear map is the usual
FitNets-style choice (Romero et al., ICLR 2015), an assumption of this codebase.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


class Model(nn.Module):
    """Linear frame projection + statistics pooling.

    Attributes:
      num_classes: C (the platform passes it to every model; the logits are zeros `[B, C]`,
        this module has no classifier).
      width: output width `D_t` (the teacher's frame width).
      use_bias: add a bias to the projection (default True).
      dtype: computation dtype (None: float32); outputs are float32.

    Input `[B, T, D_s]` frames. Returns `(zeros [B, C], feats)` with feats
    `frames [B, T, D_t]` (projected frames) and `stats [B, 2 D_t]` (mean and std over time,
    `std = sqrt(max(var, 1e-8))`, biased variance: the same pooling as `temporal_cnn`'s
    `stats`, so projected student stats and teacher stats are computed alike).

    Raises:
      ValueError: an input that is not `[B, T, D]`.
    """

    num_classes: int
    width: int = 64
    use_bias: bool = True
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False):
        del train
        if x.ndim != 3:
            raise ValueError(f"frame_projection: expected frames [B, T, D], got shape {x.shape}")
        p = nn.Dense(self.width, use_bias=self.use_bias, dtype=self.dtype, name="proj")(x).astype(jnp.float32)
        mean = p.mean(axis=1)
        std = jnp.sqrt(jnp.maximum(p.var(axis=1), 1e-8))
        logits = jnp.zeros((x.shape[0], self.num_classes), jnp.float32)
        return logits, {"frames": p, "stats": jnp.concatenate([mean, std], axis=-1)}
