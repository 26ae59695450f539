"""Temporal (1-D) convolutional network over spectrogram frames, TC-ResNet style.

Choi et al., "Temporal Convolution for Real-time Keyword Spotting on Mobile
Devices" (Interspeech 2019): the frequency bins of a `[B, T, F]` spectrogram
are the input channels of 1-D convolutions over time. On 2-core CPUs this
trains ~3.5x faster than a 2-D CNN of similar FLOPs and faster than PyTorch
(STACK-NOTES), so kdjax uses it for the main job's teacher and student.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from kdjax.models.layers import Conv1D


class ResBlock(nn.Module):
    """Two k-wide 1-D convs with BatchNorm/ReLU and a (projected) residual: `[B, T, C] -> [B, T/s, W]`."""

    width: int
    kernel: int = 9
    stride: int = 1
    conv_impl: str = "auto"
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        norm = lambda name: nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype, name=name)
        conv = lambda k, s, name: Conv1D(self.width, k, s, conv_impl=self.conv_impl, dtype=self.dtype, name=name)
        y = conv(self.kernel, self.stride, "conv1")(x)
        y = nn.relu(norm("bn1")(y))
        y = conv(self.kernel, 1, "conv2")(y)
        y = norm("bn2")(y)
        if self.stride != 1 or x.shape[-1] != self.width:
            x = conv(1, self.stride, "proj")(x)
            x = norm("bn_proj")(x)
        return nn.relu(x + y)


class Model(nn.Module):
    """TC-ResNet-style classifier.

    Attributes:
      num_classes: C.
      stem_width: channels of the first conv (kernel 3, stride `stem_stride`).
      widths: channels of each residual block.
      strides: time stride of each block (same length as widths).
      kernel: temporal kernel size of the block convs (frames).
      dropout: dropout rate before the classifier.
      conv_impl: convolution formulation, "auto" (default: one matmul over shifted patches on
        CPU, `lax.conv` on GPU/TPU), "xla" or "matmul"; see `kdjax.models.layers`. Parameters
        are the same for all three.
      dtype: computation dtype (None: float32). E.g. "bfloat16" for mixed precision: convs,
        BatchNorm and the head compute in it; parameters and BatchNorm statistics stay float32
        (`param_dtype`), and logits/feats are returned as float32 (losses run in float32).

    Input `[B, T, F]` features (e.g. log-mel, F mel bins). Returns
    `(logits [B, C], feats)` with feats `frames [B, T', D]`, `embedding [B, D]`
    (time average), `stats [B, 2D]` (mean and std over time) and `fmap{i}`
    (block outputs `[B, T_i, W_i]`).
    """

    num_classes: int
    stem_width: int = 32
    widths: Sequence[int] = (32, 64, 64)
    strides: Sequence[int] = (1, 2, 2)
    kernel: int = 9
    stem_stride: int = 1
    dropout: float = 0.0
    conv_impl: str = "auto"
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False):
        if x.ndim != 3:
            raise ValueError(f"temporal_cnn: expected features [B, T, F], got shape {x.shape}")
        if len(self.widths) != len(self.strides):
            raise ValueError(
                f"temporal_cnn: widths {tuple(self.widths)} and strides {tuple(self.strides)} differ in length"
            )
        if self.dtype is not None:  # mixed precision: the (float32) front-end output is cast here
            x = x.astype(self.dtype)
        h = Conv1D(self.stem_width, 3, self.stem_stride, conv_impl=self.conv_impl, dtype=self.dtype, name="stem")(x)
        h = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype, name="stem_bn")(h))
        feats = {}
        for i, (w, s) in enumerate(zip(self.widths, self.strides, strict=True)):
            h = ResBlock(w, self.kernel, s, self.conv_impl, self.dtype, name=f"block{i}")(h, train=train)
            feats[f"fmap{i}"] = h.astype(jnp.float32)
        # Pooling statistics, outputs and everything the losses read are float32.
        h = h.astype(jnp.float32)
        feats["frames"] = h
        mean = h.mean(axis=1)
        std = jnp.sqrt(jnp.maximum(h.var(axis=1), 1e-8))
        feats["embedding"] = mean
        feats["stats"] = jnp.concatenate([mean, std], axis=-1)
        z = nn.Dropout(self.dropout, deterministic=not train)(mean)
        logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(z)
        return logits.astype(jnp.float32), feats
