"""LSTM-P: a keyword-spotting LSTM with a recurrent projection layer.

The projected LSTM (LSTMP) is from Sak, Senior, Beaufays, "Long Short-Term Memory Recurrent
Neural Network Architectures for Large Scale Acoustic Modeling" (Interspeech 2014): the cell
output `m_t` is projected, `r_t = W_rm m_t`, and `r_t` (not `m_t`) is both the layer output and
the recurrent input, which cuts the recurrent weights from `4n x n` to `4n x p`. As a small-
footprint keyword-spotting model: Zhang, Suda, Lai, Chandra, "Hello Edge: Keyword Spotting on
Microcontrollers" (arXiv 1711.07128; ARM-software/ML-KWS-for-MCU) compare LSTMs with a projection
layer, and Rybakov et al., "Streaming Keyword Spotting on Mobile Devices" (Interspeech 2020;
google-research `kws_streaming/models/lstm.py`, flag `num_proj`) ship one. No peepholes here
(optional in those references).

Equations (gates i, f, o, cell candidate g; fused weights):
  z_t = W_x x_t + b + W_r r_{t-1};  [i, f, g, o] = split(z_t)
  c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g);  m_t = sigmoid(o) * tanh(c_t);  r_t = W_p m_t
`W_x x_t + b` for all t is one matmul before the recurrence (same math, fewer per-step ops);
the forget-gate bias starts at 1 (Jozefowicz et al. 2015; Keras `unit_forget_bias`).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from kdjax.models._common import batch_norm, cast_input, check_input, f32

POOLINGS = ("last", "mean")


def forget_bias_init(units: int):
    """Bias initialiser for fused `[i, f, g, o]` gates: 1 on the forget gate, 0 elsewhere."""

    def init(key, shape, dtype=jnp.float32):
        del key
        return jnp.zeros(shape, dtype).at[units : 2 * units].set(1.0)

    return init


class LSTMPCell(nn.RNNCellBase):
    """One LSTMP step. Input: the precomputed `W_x x_t + b` `[B, 4 units]`; carry `(c [B, units], r [B, proj])`.

    Returns `((c_t, r_t), r_t)`. Parameters: "recurrent" `[proj, 4 units]` (W_r, no bias) and
    "projection" `[units, proj]` (W_p, no bias).
    """

    units: int
    proj: int
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, carry, gates_x):
        c, r = carry
        z = gates_x + nn.Dense(
            4 * self.units,
            use_bias=False,
            dtype=self.dtype,
            kernel_init=nn.initializers.orthogonal(),
            name="recurrent",
        )(r)
        i, f, g, o = jnp.split(z, 4, axis=-1)
        c = nn.sigmoid(f) * c + nn.sigmoid(i) * jnp.tanh(g)
        m = nn.sigmoid(o) * jnp.tanh(c)
        r = nn.Dense(self.proj, use_bias=False, dtype=self.dtype, name="projection")(m)
        c = c.astype(self.param_dtype)  # the carry keeps one dtype through the scan
        r = r.astype(self.param_dtype)
        return (c, r), r

    @nn.nowrap
    def initialize_carry(self, rng, input_shape):
        """Zero `(c [*batch, units], r [*batch, proj])` for gate inputs of shape `[*batch, 4 units]`."""
        del rng
        batch = tuple(input_shape[:-1])
        return (
            jnp.zeros(batch + (self.units,), self.param_dtype),
            jnp.zeros(batch + (self.proj,), self.param_dtype),
        )

    @property
    def num_feature_axes(self) -> int:
        return 1


class Model(nn.Module):
    """LSTM-P classifier over `[B, T, F]` features (unidirectional, hence causal/streamable).

    Attributes:
      num_classes: C.
      units: LSTM cell units n per layer.
      proj: projection size p (the layer output and recurrent state width).
      num_layers: stacked LSTMP layers.
      pooling: "last" (the last frame's output, as kws_streaming `lstm` with
        `return_sequences=False`) or "mean" (time average).
      dropout: dropout before the classifier.
      input_norm: BatchNorm over the input's feature axis (per bin; statistics over batch and
        time) before the first layer, for unnormalised inputs such as log-mel dB (mean about
        -20 dB, std 14 dB on noisy Speech Commands). Off by default. It did not make Temporal
        KD's LSTM-P learn in 300 steps (configs/results/temporal_kd/lstm_p_probe/).
      dtype: computation dtype (None: float32); carries stay float32; logits/feats float32.

    Input `[B, T, F]`. Returns `(logits [B, C], feats)`: `frames` = last layer's outputs
    `[B, T, proj]`, `embedding` = `frames[:, -1]` or their time mean `[B, proj]`, `fmap{i}` =
    each layer's outputs `[B, T, proj]`.

    Raises:
      ValueError: input not `[B, T, F]` or unknown `pooling`.
    """

    num_classes: int
    units: int = 64
    proj: int = 32
    num_layers: int = 1
    pooling: str = "last"
    dropout: float = 0.0
    input_norm: bool = False
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False):
        check_input("lstm_p", x)
        if self.pooling not in POOLINGS:
            raise ValueError(f"lstm_p: pooling={self.pooling!r}, expected one of {POOLINGS}")
        h = cast_input(x, self.dtype)
        if self.input_norm:
            h = batch_norm(train, self.dtype, "input_bn")(h)
        feats = {}
        for i in range(self.num_layers):
            gx = nn.Dense(
                4 * self.units,
                dtype=self.dtype,
                bias_init=forget_bias_init(self.units),
                name=f"lstm{i}_input",
            )(h)
            h = nn.RNN(LSTMPCell(self.units, self.proj, self.dtype, name=f"lstm{i}"))(gx)
            feats[f"fmap{i}"] = h
        frames = h.astype(jnp.float32)
        emb = frames[:, -1] if self.pooling == "last" else frames.mean(axis=1)
        z = nn.Dropout(self.dropout, deterministic=not train)(cast_input(emb, self.dtype))
        logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(z)
        feats |= {"frames": frames, "embedding": emb}
        return logits.astype(jnp.float32), f32(feats)
