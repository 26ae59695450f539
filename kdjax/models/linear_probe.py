"""Linear probe on a pre-computed embedding sequence: mean over time, then one Dense layer.

EAsT (Ding & Lerch, ISMIR 2023; code suncerock/EAsT-music-classification,
`PretrainedFeatureClassifier` with `classifier="linear"`): the probe is trained first on the
frozen teacher embeddings, and its logits are the teacher logits of the "+KD" variant. Its
input is a joined array, e.g. `input="batch.embedding"` (the cache stage's output), not a
spectrogram.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from kdjax.models._common import cast_input, f32


class Model(nn.Module):
    """`[B, T, D]` (or `[B, D]`) embeddings -> logits `[B, C]` of `Dense(mean_t x)`.

    Attributes:
      num_classes: C.
      dropout: dropout on the pooled embedding during training (EAsT: 0).
      dtype: computation dtype (None: float32); outputs float32.

    Returns `(logits [B, C], feats)` with `frames` = the input `[B, T, D]` and `embedding` =
    its mean over time `[B, D]`.

    Raises:
      ValueError: an input that is not `[B, T, D]` or `[B, D]`.
    """

    num_classes: int
    dropout: float = 0.0
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False):
        if x.ndim == 2:
            x = x[:, None, :]
        if x.ndim != 3:
            raise ValueError(f"linear_probe: expected embeddings [B, T, D] or [B, D], got shape {tuple(x.shape)}")
        h = cast_input(x, self.dtype)
        emb = h.mean(axis=1)
        z = nn.Dropout(self.dropout, deterministic=not train)(emb)
        logits = nn.Dense(self.num_classes, dtype=self.dtype, name="proj")(z)
        return logits.astype(jnp.float32), f32({"frames": h, "embedding": emb})
