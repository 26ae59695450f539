"""Mobile-FCN: a fully-convolutional tagging CNN with depthwise-separable blocks.

The FCN of Choi, Fazekas, Sandler, "Automatic Tagging Using Deep Convolutional Neural Networks"
(ISMIR 2016) made mobile: the student of EAsT (Ding & Lerch, "Audio Embeddings as Teachers for
Music Classification", ISMIR 2023) on MagnaTagATune. Reference implementation:
suncerock/EAsT-music-classification, `models/basemodels/mobile_fcn.py` (`MobileFCN`, after Minz
Won's sota-music-tagging-models FCN).

Layout (reference): the first two layers are 3x3 conv + BN + ReLU + max pool; the others are
depthwise-separable (3x3 depthwise conv + BN + ReLU, 1x1 pointwise conv + BN + ReLU, max pool,
MobileNet-v1 style); widths 64-128-128-128-128-256-256-256, pools (freq, time) (2,4), (2,3),
(2,2), (4,2), (4,2), 1, 1, 1 for 96-128 mel bins and ~1500 frames; mean over time and
frequency; dropout 0.5; linear classifier. The reference blocks have no residuals. For
`block="inverted_residual"` the depthwise-separable layers are MobileNetV2 inverted residuals
instead (Sandler et al., CVPR 2018: 1x1 expand x`expansion` + BN + ReLU6, 3x3 depthwise + BN +
ReLU6, linear 1x1 projection + BN, identity residual when the shape is kept) -- an option, not
the EAsT model. Pools here are `(time, freq)` since the input is `[B, T, F]`; the small defaults
suit 100-500 frames x 40-64 mel bins.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from kdjax.models._common import batch_norm, cast_input, check_input, check_min_size, f32

BLOCKS = ("separable", "inverted_residual")


class ConvLayer(nn.Module):
    """3x3 conv (no bias) + BN + ReLU + max pool: `[B, T, F, Cin] -> [B, T / pt, F / pf, width]`."""

    width: int
    pool: tuple[int, int] = (2, 2)
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        x = nn.Conv(
            self.width, (3, 3), padding="SAME", use_bias=False, dtype=self.dtype, name="conv"
        )(x)
        x = nn.relu(batch_norm(train, self.dtype, "bn")(x))
        return _pool(x, self.pool)


class SeparableLayer(nn.Module):
    """Depthwise 3x3 + BN + ReLU, pointwise 1x1 + BN + ReLU, max pool (reference `Conv_2d_DW`).

    `[B, T, F, Cin] -> [B, T / pt, F / pf, width]`.
    """

    width: int
    pool: tuple[int, int] = (2, 2)
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        c = x.shape[-1]
        x = nn.Conv(
            c,
            (3, 3),
            padding="SAME",
            feature_group_count=c,
            use_bias=False,
            dtype=self.dtype,
            name="depthwise",
        )(x)
        x = nn.relu(batch_norm(train, self.dtype, "bn1")(x))
        x = nn.Conv(self.width, (1, 1), use_bias=False, dtype=self.dtype, name="pointwise")(x)
        x = nn.relu(batch_norm(train, self.dtype, "bn2")(x))
        return _pool(x, self.pool)


class InvertedResidual(nn.Module):
    """MobileNetV2 inverted residual (expand, depthwise, linear projection) + max pool.

    `[B, T, F, Cin] -> [B, T / pt, F / pf, width]`; identity residual when `Cin == width`
    (added before the pool).
    """

    width: int
    pool: tuple[int, int] = (2, 2)
    expansion: int = 4
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        c = x.shape[-1]
        e = c * self.expansion
        y = nn.Conv(e, (1, 1), use_bias=False, dtype=self.dtype, name="expand")(x)
        y = nn.relu6(batch_norm(train, self.dtype, "bn1")(y))
        y = nn.Conv(
            e,
            (3, 3),
            padding="SAME",
            feature_group_count=e,
            use_bias=False,
            dtype=self.dtype,
            name="depthwise",
        )(y)
        y = nn.relu6(batch_norm(train, self.dtype, "bn2")(y))
        y = nn.Conv(self.width, (1, 1), use_bias=False, dtype=self.dtype, name="project")(y)
        y = batch_norm(train, self.dtype, "bn3")(y)
        if c == self.width:
            y = y + x
        return _pool(y, self.pool)


def _pool(x: jax.Array, pool: Sequence[int]) -> jax.Array:
    pool = tuple(pool)
    return x if pool == (1, 1) else nn.max_pool(x, window_shape=pool, strides=pool)


class Model(nn.Module):
    """Mobile-FCN classifier/tagger over `[B, T, F]` features.

    Attributes:
      num_classes: C (50 tags on MagnaTagATune; use sigmoid losses for multi-label).
      widths: channels of each layer (reference: 64, 128, 128, 128, 128, 256, 256, 256).
      pools: max-pool window (= stride) after each layer, `(time, freq)` (1, 1 = none).
      full_conv_layers: how many leading layers are full 3x3 convs (reference: 2).
      block: "separable" (reference, depthwise-separable) or "inverted_residual" (MobileNetV2).
      expansion: expansion factor of the inverted residuals.
      dropout: dropout before the classifier (reference: 0.5, also after layers 4 and 6).
      dtype: computation dtype (None: float32); logits/feats are returned as float32.

    Input `[B, T, F]`. Returns `(logits [B, C], feats)`: `fmap{i}` layer outputs
    `[B, T_i, F_i, W_i]`, `frames` = last layer averaged over frequency `[B, T', W]`,
    `embedding` = frames averaged over time `[B, W]`.

    Raises:
      ValueError: input not `[B, T, F]`, too short for the pools, unknown `block`, or `pools` of a
        different length than `widths`.
    """

    num_classes: int
    widths: Sequence[int] = (16, 32, 32, 64, 64)
    pools: Sequence[tuple[int, int]] = ((2, 2), (2, 2), (2, 2), (2, 2), (1, 1))
    full_conv_layers: int = 2
    block: str = "separable"
    expansion: int = 4
    dropout: float = 0.5
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False):
        check_input("mobile_fcn", x)
        if self.block not in BLOCKS:
            raise ValueError(f"mobile_fcn: block={self.block!r}, expected one of {BLOCKS}")
        if len(self.pools) != len(self.widths):
            raise ValueError(
                f"mobile_fcn: pools {self.pools} and widths {self.widths} differ in length"
            )
        check_min_size(
            "mobile_fcn",
            x,
            math.prod(p[0] for p in self.pools),
            math.prod(p[1] for p in self.pools),
        )
        h = cast_input(x, self.dtype)[..., None]
        feats = {}
        for i, (w, p) in enumerate(zip(self.widths, self.pools, strict=True)):
            p = tuple(p)
            if i < self.full_conv_layers:
                h = ConvLayer(w, p, self.dtype, name=f"layer{i}")(h, train=train)
            elif self.block == "separable":
                h = SeparableLayer(w, p, self.dtype, name=f"layer{i}")(h, train=train)
            else:
                h = InvertedResidual(w, p, self.expansion, self.dtype, name=f"layer{i}")(
                    h, train=train
                )
            feats[f"fmap{i}"] = h
        frames = h.mean(axis=2)
        emb = frames.mean(axis=1)
        z = nn.Dropout(self.dropout, deterministic=not train)(emb)
        logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(z)
        feats |= {"frames": frames, "embedding": emb}
        return logits.astype(jnp.float32), f32(feats)
