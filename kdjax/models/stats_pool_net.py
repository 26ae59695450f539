"""Statistics-pooling network (x-vector): TDNN frame layers, mean+std pooling, segment layers.

Snyder, Garcia-Romero, Sell, Povey, Khudanpur, "X-Vectors: Robust DNN Embeddings for Speaker
Recognition" (ICASSP 2018), Table 1; reference recipe Kaldi `egs/sre16/v2`
(`local/nnet3/xvector/tuning/run_xvector_1a.sh`). The teacher shape of FRAMI-style distillation
(mel -> network -> statistics pooling -> classifier).

Layout (paper): frame1-frame5 are TDNN layers = 1-D convolutions over time with contexts
[t-2, t+2], {t-2, t, t+2}, {t-3, t, t+3}, {t}, {t} (kernels 5, 3, 3, 1, 1; dilations 1, 2, 3, 1, 1;
widths 512, 512, 512, 512, 1500), each affine + ReLU + BatchNorm (Kaldi's "relu-batchnorm"
order); statistics pooling = mean and standard deviation over time (3000); segment6 (512) -> the
x-vector embedding (taken before its nonlinearity, "embedding a"), segment7 (512), softmax. The
TDNN layers here use "SAME" padding (Kaldi uses valid context, which drops 7 frames at the
edges), via `kdjax.models.layers.Conv1D` (one matmul per layer on CPU). Small default widths.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from kdjax.models._common import batch_norm, cast_input, check_input, f32, mean_std
from kdjax.models.layers import Conv1D


def statistics_pooling(frames: jax.Array, *, eps: float = 1e-8) -> jax.Array:
    """Mean and standard deviation over time, concatenated: `[B, T, D] -> [B, 2D]`.

    `[mean_t h_t, sqrt(max(var_t h_t, eps))]` with the biased (1/T) variance (Kaldi's
    `StatisticsPoolingComponent` with `output-stddevs=true` also floors the variance). Invariant
    to permutations of the T frames.
    """
    check_input("statistics_pooling", frames, 3, "frames [B, T, D]")
    mean, std = mean_std(frames.astype(jnp.float32), axis=1, eps=eps)
    return jnp.concatenate([mean, std], axis=-1)


class Model(nn.Module):
    """x-vector classifier over `[B, T, F]` features.

    Attributes:
      num_classes: C.
      widths: channels of the TDNN frame layers (paper: 512, 512, 512, 512, 1500).
      kernels: their kernel sizes (paper: 5, 3, 3, 1, 1).
      dilations: their dilations (paper: 1, 2, 3, 1, 1).
      embed_dim: width of the segment layers (paper: 512).
      segment_layers: segment-level Dense layers after pooling (paper: 2); the first gives the
        embedding.
      dropout: dropout before the classifier.
      conv_impl: see `kdjax.models.layers.Conv1D`.
      dtype: computation dtype (None: float32); pooling in float32; logits/feats float32.

    Input `[B, T, F]`. Returns `(logits [B, C], feats)`: `fmap{i}` frame-layer outputs
    `[B, T, W_i]`, `frames` = the last frame layer `[B, T, W]`, `stats` =
    `statistics_pooling(frames)` `[B, 2W]`, `embedding` = segment6 before its ReLU
    `[B, embed_dim]`.

    Raises:
      ValueError: input not `[B, T, F]`, or widths/kernels/dilations of different lengths.
    """

    num_classes: int
    widths: Sequence[int] = (64, 64, 64, 64, 128)
    kernels: Sequence[int] = (5, 3, 3, 1, 1)
    dilations: Sequence[int] = (1, 2, 3, 1, 1)
    embed_dim: int = 64
    segment_layers: int = 2
    dropout: float = 0.0
    conv_impl: str = "auto"
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False):
        check_input("stats_pool_net", x)
        if not len(self.widths) == len(self.kernels) == len(self.dilations):
            raise ValueError(
                f"stats_pool_net: widths {self.widths}, kernels {self.kernels} and dilations "
                f"{self.dilations} must have one entry per frame layer"
            )
        if self.segment_layers < 1:
            raise ValueError(
                f"stats_pool_net: segment_layers must be >= 1, got {self.segment_layers}"
            )
        h = cast_input(x, self.dtype)
        feats = {}
        for i, (w, k, d) in enumerate(zip(self.widths, self.kernels, self.dilations, strict=True)):
            h = Conv1D(
                w,
                k,
                use_bias=True,
                conv_impl=self.conv_impl,
                dtype=self.dtype,
                dilation=d,
                name=f"frame{i + 1}",
            )(h)
            h = batch_norm(train, self.dtype, f"frame{i + 1}_bn")(nn.relu(h))
            feats[f"fmap{i}"] = h
        frames = h.astype(jnp.float32)
        stats = statistics_pooling(frames)
        z = cast_input(stats, self.dtype)
        for j in range(self.segment_layers):
            z = nn.Dense(
                self.embed_dim, dtype=self.dtype, name=f"segment{len(self.widths) + 1 + j}"
            )(z)
            if j == 0:
                feats["embedding"] = z
            z = batch_norm(train, self.dtype, f"segment{len(self.widths) + 1 + j}_bn")(nn.relu(z))
        z = nn.Dropout(self.dropout, deterministic=not train)(z)
        logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(z)
        feats |= {"frames": frames, "stats": stats}
        return logits.astype(jnp.float32), f32(feats)
