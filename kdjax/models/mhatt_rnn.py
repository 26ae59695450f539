"""MHAtt-RNN: Att-RNN with several attention heads (queries) from the middle frame.

Rybakov, Kononenko, Subrahmanya, Visontai, Laurenzo, "Streaming Keyword Spotting on Mobile
Devices" (Interspeech 2020); reference implementation google-research
`kws_streaming/models/mhatt_rnn.py`. Built on Att-RNN (de Andrade et al. 2018,
`kdjax.models.att_rnn`).

Layout (reference): the Att-RNN front (Conv2D (5, 1) layers, bidirectional RNN layers -> frames
`[B, T, 2H]`); for each of `heads` heads, query_h = Dense_h(2H)(frames[:, T // 2]), weights_h =
softmax_t(frames . query_h), vector_h = sum_t weights_h,t frames_t; the head vectors are
concatenated `[B, heads * 2H]`, dropout, Dense layers, classifier. Each head attends with the
full 2H-dimensional features (no split into sub-spaces). The per-head query Dense layers are one
Dense(heads * 2H) here (the same parameters, one matmul).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from kdjax.models._common import cast_input, check_input, f32
from kdjax.models.att_rnn import ConvRNNEncoder, query_index


class Model(nn.Module):
    """MHAtt-RNN classifier over `[B, T, F]` features.

    Attributes:
      num_classes: C.
      heads: number of attention heads (reference: 4).
      conv_filters, conv_kernel, rnn, rnn_units, rnn_layers: the Att-RNN front
        (`kdjax.models.att_rnn.ConvRNNEncoder`; kws_streaming's default RNN is a GRU).
      query_frame: "middle" (reference) or "last".
      dense_units: hidden Dense layers; the first has ReLU, the others are linear.
      dropout: dropout on the concatenated head vectors (reference `dropout1`: 0.1).
      dtype: computation dtype (None: float32); softmax in float32; logits/feats float32.

    Input `[B, T, F]`. Returns `(logits [B, C], feats)`: `frames` `[B, T, 2H]`,
    `head_attention_weights` `[B, heads, T]` (each row sums to 1), `attention_weights` = their
    mean over heads `[B, T]` (a distribution over frames, for temporal-attention losses),
    `embedding` = concatenated head vectors `[B, heads * 2H]`.

    Raises:
      ValueError: input not `[B, T, F]`, unknown `rnn` or `query_frame`.
    """

    num_classes: int
    heads: int = 4
    conv_filters: Sequence[int] = (10, 1)
    conv_kernel: int = 5
    rnn: str = "gru"
    rnn_units: int = 32
    rnn_layers: int = 2
    query_frame: str = "middle"
    dense_units: Sequence[int] = (64, 32)
    dropout: float = 0.1
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False):
        check_input("mhatt_rnn", x)
        h = ConvRNNEncoder(
            self.conv_filters,
            self.conv_kernel,
            self.rnn,
            self.rnn_units,
            self.rnn_layers,
            self.dtype,
            name="encoder",
        )(cast_input(x, self.dtype), train=train)
        b, t, d = h.shape
        mid = h[:, query_index(t, self.query_frame)]
        queries = nn.Dense(self.heads * d, dtype=self.dtype, name="queries")(mid).reshape(
            b, self.heads, d
        )
        scores = jnp.einsum("bhd,btd->bht", queries, h).astype(jnp.float32)
        weights = jax.nn.softmax(scores, axis=-1)
        frames = h.astype(jnp.float32)
        vecs = jnp.einsum("bht,btd->bhd", weights, frames).reshape(b, self.heads * d)
        z = nn.Dropout(self.dropout, deterministic=not train)(cast_input(vecs, self.dtype))
        for i, u in enumerate(self.dense_units):
            z = nn.Dense(u, dtype=self.dtype, name=f"dense{i}")(z)
            z = nn.relu(z) if i == 0 else z
        logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(z)
        feats = {
            "frames": frames,
            "head_attention_weights": weights,
            "attention_weights": weights.mean(axis=1),
            "embedding": vecs,
        }
        return logits.astype(jnp.float32), f32(feats)
