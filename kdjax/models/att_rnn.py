"""Att-RNN: convolutions, two bidirectional LSTMs and dot-product attention with one query.

de Andrade, Leo, Da Silva Viana, Bernkopf, "A neural attention model for speech command
recognition" (arXiv 1808.08929, 2018); reference implementation douglas125/SpeechCmdRecognition,
`SpeechModels.py` (`AttRNNSpeechModel`); also google-research `kws_streaming/models/att_rnn.py`
(Rybakov et al., Interspeech 2020).

Layout (reference): the spectrogram as `[B, T, F, 1]`; Conv2D(10, (5, 1)) + ReLU + BN and
Conv2D(1, (5, 1)) + ReLU + BN (5-frame kernels over time, one per bin); squeeze to `[B, T, F]`;
two bidirectional LSTM(64) layers -> frames `[B, T, 2H]`; query = Dense(2H)(frames[:, q]) for one
frame q; scores = frames . query; weights = softmax over time; attention vector = weights-weighted
sum of frames; Dense(64) + ReLU, Dense(32) (linear), Dense(C). The paper picks the middle frame
as the query (kws_streaming: `middle = T // 2`); the Keras reference code takes the last frame
(`query_frame="last"`). No 1/sqrt(d) scaling (plain dot product, as in the references).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from kdjax.models._common import batch_norm, cast_input, check_input, f32

RNNS = ("lstm", "gru")
QUERY_FRAMES = ("middle", "last")


def birnn(kind: str, units: int, dtype: Any, name: str) -> nn.Bidirectional:
    """Bidirectional LSTM (`nn.OptimizedLSTMCell`) or GRU (`nn.GRUCell`): `[B, T, D] -> [B, T, 2 units]`.

    Parameters live under `{name}_fwd` and `{name}_bwd` (the cells' names).
    """
    cell = nn.OptimizedLSTMCell if kind == "lstm" else nn.GRUCell
    return nn.Bidirectional(
        nn.RNN(cell(units, dtype=dtype, name=f"{name}_fwd")),
        nn.RNN(cell(units, dtype=dtype, name=f"{name}_bwd")),
    )


class ConvRNNEncoder(nn.Module):
    """The shared front of Att-RNN / MHAtt-RNN: `[B, T, F] -> frames [B, T, 2 rnn_units]`.

    Conv2D (kernel `(conv_kernel, 1)`: over time, per mel bin) + ReLU + BN for each of
    `conv_filters`, the last filter count times F stacked per frame, then `rnn_layers`
    bidirectional RNNs.
    """

    conv_filters: Sequence[int] = (10, 1)
    conv_kernel: int = 5
    rnn: str = "lstm"
    rnn_units: int = 32
    rnn_layers: int = 2
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        if self.rnn not in RNNS:
            raise ValueError(f"rnn={self.rnn!r}, expected one of {RNNS}")
        h = x[..., None]
        for i, c in enumerate(self.conv_filters):
            h = nn.Conv(
                c, (self.conv_kernel, 1), padding="SAME", dtype=self.dtype, name=f"conv{i}"
            )(h)
            # Reference order: ReLU, then BN.
            h = batch_norm(train, self.dtype, f"bn{i}")(nn.relu(h))
        b, t, f, c = h.shape
        h = h.reshape(b, t, f * c)
        for i in range(self.rnn_layers):
            h = birnn(self.rnn, self.rnn_units, self.dtype, f"rnn{i}")(h)
        return h


def query_index(t: int, query_frame: str) -> int:
    """Index of the query frame: `T // 2` ("middle", as kws_streaming) or `T - 1` ("last")."""
    if query_frame not in QUERY_FRAMES:
        raise ValueError(f"query_frame={query_frame!r}, expected one of {QUERY_FRAMES}")
    return t // 2 if query_frame == "middle" else t - 1


class Model(nn.Module):
    """Att-RNN classifier over `[B, T, F]` features.

    Attributes:
      num_classes: C.
      conv_filters: channels of the (k, 1) convs (reference: 10, 1).
      conv_kernel: k, time taps of those convs (reference: 5).
      rnn: "lstm" (paper) or "gru" (kws_streaming's default).
      rnn_units: units per direction (reference: 64; small default 32).
      rnn_layers: bidirectional layers (reference: 2).
      query_frame: "middle" (paper) or "last" (Keras reference code).
      dense_units: hidden Dense layers after attention; the first has ReLU, the others are linear
        (reference: 64 ReLU, 32 linear).
      dropout: dropout on the attention vector (kws_streaming: 0.1).
      dtype: computation dtype (None: float32); the softmax runs in float32; logits/feats float32.

    Input `[B, T, F]`. Returns `(logits [B, C], feats)`: `frames` = RNN outputs `[B, T, 2H]`,
    `attention_weights` `[B, T]` (softmax over time, rows sum to 1), `attention_scores` `[B, T]`
    (before the softmax), `embedding` = attention vector `sum_t w_t frames_t` `[B, 2H]`.

    Raises:
      ValueError: input not `[B, T, F]`, unknown `rnn` or `query_frame`.
    """

    num_classes: int
    conv_filters: Sequence[int] = (10, 1)
    conv_kernel: int = 5
    rnn: str = "lstm"
    rnn_units: int = 32
    rnn_layers: int = 2
    query_frame: str = "middle"
    dense_units: Sequence[int] = (64, 32)
    dropout: float = 0.1
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False):
        check_input("att_rnn", x)
        h = ConvRNNEncoder(
            self.conv_filters,
            self.conv_kernel,
            self.rnn,
            self.rnn_units,
            self.rnn_layers,
            self.dtype,
            name="encoder",
        )(cast_input(x, self.dtype), train=train)
        q = query_index(h.shape[1], self.query_frame)
        query = nn.Dense(h.shape[-1], dtype=self.dtype, name="query")(h[:, q])
        scores = jnp.einsum("bd,btd->bt", query, h).astype(jnp.float32)
        weights = jax.nn.softmax(scores, axis=-1)
        frames = h.astype(jnp.float32)
        vec = jnp.einsum("bt,btd->bd", weights, frames)
        z = nn.Dropout(self.dropout, deterministic=not train)(cast_input(vec, self.dtype))
        for i, u in enumerate(self.dense_units):
            z = nn.Dense(u, dtype=self.dtype, name=f"dense{i}")(z)
            z = nn.relu(z) if i == 0 else z
        logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(z)
        feats = {
            "frames": frames,
            "attention_weights": weights,
            "attention_scores": scores,
            "embedding": vec,
        }
        return logits.astype(jnp.float32), f32(feats)
