"""VGG-style 2-D CNN over log-mel spectrograms, PANNs CNN10 style.

Kong, Cao, Iqbal, Wang, Wang, Plumbley, "PANNs: Large-Scale Pretrained Audio Neural Networks for
Audio Pattern Recognition" (IEEE/ACM TASLP 2020); reference implementation qiuqiangkong/
audioset_tagging_cnn, `pytorch/models.py` (`ConvBlock`, `Cnn10`).

Layout (reference Cnn10): `bn0` = BatchNorm over the mel bins of the input; conv blocks of
2x (3x3 conv without bias, BN, ReLU) followed by 2x2 average pooling and dropout 0.2 (widths
64-128-256-512 in the paper; configurable, small by default); global pooling = mean over
frequency, then max + mean over time; dropout 0.5; `fc1` + ReLU (PANNs' "embedding"); dropout
0.5; linear classifier. (CNN6 uses one 5x5 conv per block; not modelled here.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from kdjax.models._common import batch_norm, cast_input, check_input, check_min_size, f32


class ConvBlock(nn.Module):
    """2x (3x3 conv, BN, ReLU) + average pooling: `[B, T, F, Cin] -> [B, T / p, F / p, width]`."""

    width: int
    pool: tuple[int, int] = (2, 2)
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        for i in (1, 2):
            x = nn.Conv(
                self.width,
                (3, 3),
                padding="SAME",
                use_bias=False,
                kernel_init=nn.initializers.xavier_uniform(),
                dtype=self.dtype,
                name=f"conv{i}",
            )(x)
            x = nn.relu(batch_norm(train, self.dtype, f"bn{i}")(x))
        if tuple(self.pool) != (1, 1):
            x = nn.avg_pool(x, window_shape=tuple(self.pool), strides=tuple(self.pool))
        return x


class Model(nn.Module):
    """PANNs-style CNN classifier over `[B, T, F]` features.

    Attributes:
      num_classes: C.
      widths: channels of each conv block (PANNs Cnn10: 64, 128, 256, 512).
      pool: average-pool window (= stride) after each block, `(time, freq)`.
      embed_dim: width of `fc1` (None: `widths[-1]`, as in PANNs).
      bn0: BatchNorm over the mel bins of the input (PANNs `bn0`).
      block_dropout: dropout after each block (PANNs: 0.2).
      dropout: dropout before and after `fc1` (PANNs: 0.5).
      dtype: computation dtype (None: float32); logits/feats are returned as float32.

    Input `[B, T, F]`. Returns `(logits [B, C], feats)`: `fmap{i}` block outputs
    `[B, T_i, F_i, W_i]`, `frames` = last block averaged over frequency `[B, T', W]`, `pooled`
    = max + mean of frames over time `[B, W]`, `embedding` = ReLU(fc1(pooled)) `[B, embed_dim]`
    (PANNs' embedding).

    Raises:
      ValueError: input not `[B, T, F]`, or too short for the poolings.
    """

    num_classes: int
    widths: Sequence[int] = (16, 32, 64, 128)
    pool: tuple[int, int] = (2, 2)
    embed_dim: int | None = None
    bn0: bool = True
    block_dropout: float = 0.2
    dropout: float = 0.5
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False):
        check_input("cnn2d", x)
        n = len(self.widths)
        check_min_size("cnn2d", x, self.pool[0] ** n, self.pool[1] ** n)
        h = cast_input(x, self.dtype)
        if self.bn0:  # per-mel-bin normalisation, statistics over batch and time
            h = batch_norm(train, self.dtype, "bn0")(h)
        h = h[..., None]
        feats = {}
        for i, w in enumerate(self.widths):
            h = ConvBlock(w, tuple(self.pool), self.dtype, name=f"block{i}")(h, train=train)
            h = nn.Dropout(self.block_dropout, deterministic=not train)(h)
            feats[f"fmap{i}"] = h
        frames = h.mean(axis=2)
        pooled = frames.max(axis=1) + frames.mean(axis=1)
        z = nn.Dropout(self.dropout, deterministic=not train)(pooled)
        emb = nn.relu(nn.Dense(self.embed_dim or self.widths[-1], dtype=self.dtype, name="fc1")(z))
        z = nn.Dropout(self.dropout, deterministic=not train)(emb)
        logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(z)
        feats |= {"frames": frames, "pooled": pooled, "embedding": emb}
        return logits.astype(jnp.float32), f32(feats)
