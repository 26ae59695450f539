"""CRNN: a convolutional front followed by a bidirectional GRU over time.

Cakir, Parascandolo, Heittola, Huttunen, Virtanen, "Convolutional Recurrent Neural Networks for
Polyphonic Sound Event Detection" (IEEE/ACM TASLP 2017): 2-D conv blocks that pool only the
frequency axis (time resolution kept), the channels x remaining bins stacked per frame, then
bidirectional GRUs; reference implementation sharathadavanne/sed-crnn (`sed.py`). Choi, Fazekas,
Sandler, Cho, "Convolutional Recurrent Neural Networks for Music Classification" (ICASSP 2017)
use the same pattern for clip tagging (keunwoochoi/music-auto_tagging-keras).

Here `front="2d"` is that front (3x3 conv + BN + ReLU + max pool over frequency); `front="1d"`
(default, faster on CPU: STACK-NOTES) uses 1-D convs over time with the mel bins as channels
(TC-ResNet style, `kdjax.models.layers.Conv1D`). The recurrence is flax `nn.RNN(nn.GRUCell)` in
both directions (`nn.Bidirectional`, outputs concatenated); clip logits come from the time mean
of the RNN outputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from kdjax.models._common import batch_norm, cast_input, check_input, check_min_size, f32
from kdjax.models.layers import Conv1D

FRONTS = ("1d", "2d")


def bigru(units: int, dtype: Any, name: str) -> nn.Bidirectional:
    """A bidirectional `nn.RNN(nn.GRUCell(units))`: `[B, T, D] -> [B, T, 2 units]` (forward, backward).

    Parameters live under the cells' names, `{name}_fwd` and `{name}_bwd` (cells built in a compact
    method belong to that module's scope, not to the `nn.RNN`).
    """
    return nn.Bidirectional(
        nn.RNN(nn.GRUCell(units, dtype=dtype, name=f"{name}_fwd")),
        nn.RNN(nn.GRUCell(units, dtype=dtype, name=f"{name}_bwd")),
    )


class Model(nn.Module):
    """CRNN classifier over `[B, T, F]` features.

    Attributes:
      num_classes: C.
      front: "1d" (Conv1D over time, mel bins as channels) or "2d" (3x3 Conv2D, frequency pooling).
      conv_widths: channels of each conv layer.
      conv_kernel: kernel size (time taps for "1d"; k x k for "2d").
      time_strides: "1d": time stride of each conv layer (shortens the sequence the GRU runs
        over; 1 keeps every frame, as in Cakir et al.). Ignored by "2d".
      freq_pools: "2d": max-pool factor over frequency after each conv layer (Cakir et al.:
        5, 2, 2 for 40 bins). Ignored by "1d".
      rnn_units: GRU units per direction.
      rnn_layers: stacked bidirectional GRU layers.
      dropout: dropout after the front and before the classifier.
      conv_impl: "1d" convolution formulation, see `kdjax.models.layers` ("auto": one matmul on
        CPU, `lax.conv` elsewhere).
      dtype: computation dtype (None: float32); the GRU carry stays float32; logits/feats are
        returned as float32.

    Input `[B, T, F]`. Returns `(logits [B, C], feats)`: `fmap{i}` conv outputs (`[B, T_i, W_i]`
    for "1d", `[B, T, F_i, W_i]` for "2d"), `frames` = last GRU layer's outputs
    `[B, T', 2 rnn_units]`, `embedding` = their time mean `[B, 2 rnn_units]`.

    Raises:
      ValueError: input not `[B, T, F]`, unknown `front`, mismatched lengths, or frequency
        pools larger than F.
    """

    num_classes: int
    front: str = "1d"
    conv_widths: Sequence[int] = (32, 32)
    conv_kernel: int = 3
    time_strides: Sequence[int] = (1, 2)
    freq_pools: Sequence[int] = (2, 2)
    rnn_units: int = 32
    rnn_layers: int = 1
    dropout: float = 0.0
    conv_impl: str = "auto"
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False):
        check_input("crnn", x)
        if self.front not in FRONTS:
            raise ValueError(f"crnn: front={self.front!r}, expected one of {FRONTS}")
        h = cast_input(x, self.dtype)
        feats = {}
        if self.front == "1d":
            if len(self.time_strides) != len(self.conv_widths):
                raise ValueError(
                    f"crnn: time_strides {self.time_strides} and conv_widths {self.conv_widths} differ"
                )
            for i, (w, s) in enumerate(zip(self.conv_widths, self.time_strides, strict=True)):
                h = Conv1D(
                    w,
                    self.conv_kernel,
                    s,
                    conv_impl=self.conv_impl,
                    dtype=self.dtype,
                    name=f"conv{i}",
                )(h)
                h = nn.relu(batch_norm(train, self.dtype, f"bn{i}")(h))
                feats[f"fmap{i}"] = h
        else:
            if len(self.freq_pools) != len(self.conv_widths):
                raise ValueError(
                    f"crnn: freq_pools {self.freq_pools} and conv_widths {self.conv_widths} differ"
                )
            check_min_size("crnn", x, 1, math.prod(self.freq_pools))
            h = h[..., None]
            k = self.conv_kernel
            for i, (w, p) in enumerate(zip(self.conv_widths, self.freq_pools, strict=True)):
                h = nn.Conv(
                    w, (k, k), padding="SAME", use_bias=False, dtype=self.dtype, name=f"conv{i}"
                )(h)
                h = nn.relu(batch_norm(train, self.dtype, f"bn{i}")(h))
                if p > 1:
                    h = nn.max_pool(h, window_shape=(1, p), strides=(1, p))
                feats[f"fmap{i}"] = h
            b, t, f, c = h.shape
            h = h.reshape(b, t, f * c)  # stack bins x channels per frame (Cakir et al.)
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
        for i in range(self.rnn_layers):
            h = bigru(self.rnn_units, self.dtype, f"gru{i}")(h)
        frames = h.astype(jnp.float32)
        emb = frames.mean(axis=1)
        z = nn.Dropout(self.dropout, deterministic=not train)(cast_input(emb, self.dtype))
        logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(z)
        feats |= {"frames": frames, "embedding": emb}
        return logits.astype(jnp.float32), f32(feats)
