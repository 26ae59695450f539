"""wav2vec 2.0 for sequence classification, loadable from Hugging Face PyTorch checkpoints.

Baevski, Zhou, Mohamed, Auli, "wav2vec 2.0: A Framework for Self-Supervised Learning of Speech
Representations" (NeurIPS 2020, arXiv 2006.11477); the architecture and parameter layout of
Hugging Face transformers' `Wav2Vec2ForSequenceClassification`
(transformers/models/wav2vec2/modeling_wav2vec2.py), written here in Flax linen so that its
PyTorch checkpoints load with `load_hf_checkpoint` and its outputs match (tests/train/
test_wav2vec2.py compares logits, every layer's attention and hidden states with transformers).

Temporal KD (Choi et al., ICASSP 2022, arXiv 2110.14131) fine-tunes this model as the teacher
and distils the attention rollout of all its layers (`kdjax.losses.attention_rollout` over
`feats["attention"]`, `[L, B, H, N, N]`).

Architecture (field names are transformers' `Wav2Vec2Config` names):
  1. feature encoder: `len(conv_dim)` 1-D convolutions over the raw waveform (no padding), each
     followed by the activation; `feat_extract_norm="group"` (base) puts a GroupNorm with one
     group per channel (normalisation over time) on the first layer only, `"layer"` (large,
     lv60) a LayerNorm over channels after every convolution. Output `conv_features`
     `[B, N, conv_dim[-1]]`, one frame per 20 ms at 16 kHz for the default strides.
  2. feature projection: LayerNorm, Dense(hidden_size), dropout (`feat_proj_dropout`).
  3. positional convolution: a grouped convolution (`num_conv_pos_embeddings` taps,
     `num_conv_pos_embedding_groups` groups) with weight normalisation over the kernel axis
     (`weight = g * v / ||v||`, the norm over output and input channels per tap, computed at
     every call so the parametrisation is fine-tuned as in PyTorch), "same" padding (an even
     kernel drops the last output frame), GELU; added to its input.
  4. transformer encoder, post-LN (`do_stable_layer_norm=False`, base: LayerNorm after the
     positional embedding and after each residual) or pre-LN (`True`, large: LayerNorm before
     attention and FFN, one final LayerNorm). Multi-head self-attention with biases on all four
     projections, an FFN with `hidden_act` ("gelu" = exact erf GELU, as in transformers).
  5. head: Dense(classifier_proj_size) on every frame, mean over time, Dense(num_classes).
     `use_weighted_layer_sum=True` (SUPERB checkpoints) feeds the projector a softmax-weighted
     sum of the encoder input and every layer's output instead of the last hidden state. For
     pre-LN models the last term is the last layer's output before the final LayerNorm, as in
     transformers 5 (tested); transformers 4 used the output after it, so a pre-LN checkpoint
     with a weighted layer sum fine-tuned under transformers 4 differs in that one term.

What is not implemented (documented choices, not silent ones):
  * No padding mask: every clip of a batch has the same length (the platform crops/pads clips
    to `clip_seconds`), so all frames are attended to and averaged. transformers only uses an
    attention mask for padded batches.
  * SpecAugment-style masking of hidden states during fine-tuning (`mask_time_prob`,
    `mask_feature_prob`; transformers' default `mask_time_prob=0.05`) is not implemented: those
    config fields are ignored and `masked_spec_embed` is not loaded.
  * `layerdrop` is implemented by selecting the layer's input instead of its output with
    probability `layerdrop` (train mode only): it regularises as in transformers but saves no
    compute, and a dropped layer's attention probabilities are still reported.
  * Adapters (`add_adapter`, `adapter_attn_dim`) are not supported (ValueError on load).

Attention rollout: wav2vec 2.0 has no class token, so the "class-token row" of the rollout that
Temporal KD matches a student's attention to does not exist. A recipe must choose one: the first
frame's row (`cls_index=0`, which also drops frame 0 from the distribution), or the mean of the
rollout over query rows (every frame's attribution over input frames, averaged: the natural
analogue for a mean-pooled classifier). This module only returns the per-layer attention
`[L, B, H, N, N]` with N = frames; the choice belongs to the loss/recipe.

Loading a checkpoint: `load_hf_checkpoint(dir)` reads `config.json` and `model.safetensors`
(with `safetensors.numpy`, no torch needed; also a sharded `model.safetensors.index.json`) or
`pytorch_model.bin` (torch needed) and returns the model's keyword arguments and parameters.
`params_from_torch_state_dict` converts an in-memory state dict. A checkpoint without the
classification head (`Wav2Vec2Model`, `Wav2Vec2ForPreTraining` such as facebook/wav2vec2-base,
or `Wav2Vec2ForCTC`) loads too; the head is then freshly initialised and listed in `missing`.
The platform hook `models.<name>.pretrained = "<dir>"` (docs/platform.md) calls
`pretrained_kwargs` and `load_pretrained`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from kdjax.models._common import cast_input, check_input, f32

NAME = "wav2vec2"

# transformers' ACT2FN names used by wav2vec 2.0 configs ("gelu" is the exact erf GELU).
ACTIVATIONS = {
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
    "gelu_new": functools.partial(jax.nn.gelu, approximate=True),
    "gelu_pytorch_tanh": functools.partial(jax.nn.gelu, approximate=True),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
}

# Initialisers follow transformers' `Wav2Vec2PreTrainedModel._init_weights`, so a model
# trained from scratch starts as there: Dense N(0, 0.02) with zero bias; convolutions He
# normal (untruncated, as torch's kaiming_normal_); positional conv N(0, 2 / sqrt(k * D)).
_DENSE_INIT = nn.initializers.normal(0.02)
_CONV_INIT = nn.initializers.variance_scaling(2.0, "fan_in", "normal")


def _uniform(bound: float):
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def min_samples(conv_kernel: Sequence[int], conv_stride: Sequence[int]) -> int:
    """Fewest input samples for which the conv feature encoder yields one frame.

    The receptive field of one output frame: 400 samples (25 ms at 16 kHz) for the default
    kernels (10, 3, 3, 3, 3, 2, 2) and strides (5, 2, 2, 2, 2, 2, 2).
    """
    n = 1
    for k, s in zip(reversed(tuple(conv_kernel)), reversed(tuple(conv_stride)), strict=True):
        n = (n - 1) * s + k
    return n


def num_frames(samples: int, conv_kernel: Sequence[int], conv_stride: Sequence[int]) -> int:
    """Frames N out of the conv feature encoder for `samples` input samples (no padding):
    `n -> (n - k) // s + 1` per layer (49 frames for 1 s at 16 kHz with the defaults)."""
    n = int(samples)
    for k, s in zip(conv_kernel, conv_stride, strict=True):
        n = (n - k) // s + 1
    return n


class ConvLayer(nn.Module):
    """One feature-encoder layer: `[B, T, C_in] -> [B, T', C]`, T' = (T - kernel) // stride + 1.

    Conv1d (no padding) -> optional norm ("group": GroupNorm with one group per channel, i.e.
    each channel normalised over time; "layer": LayerNorm over channels; None: none) ->
    activation. Norm epsilon 1e-5 (torch's default; transformers does not pass the config's).
    """

    features: int
    kernel: int
    stride: int
    use_bias: bool
    norm: str | None
    activation: str
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        bias_bound = math.sqrt(1.0 / (x.shape[-1] * self.kernel))
        x = nn.Conv(
            self.features,
            (self.kernel,),
            (self.stride,),
            padding="VALID",
            use_bias=self.use_bias,
            kernel_init=_CONV_INIT,
            bias_init=_uniform(bias_bound),
            dtype=self.dtype,
            name="conv",
        )(x)
        if self.norm == "group":
            x = nn.GroupNorm(
                num_groups=self.features,
                epsilon=1e-5,
                use_fast_variance=False,
                dtype=self.dtype,
                name="layer_norm",
            )(x)
        elif self.norm == "layer":
            x = nn.LayerNorm(
                epsilon=1e-5, use_fast_variance=False, dtype=self.dtype, name="layer_norm"
            )(x)
        return ACTIVATIONS[self.activation](x)


class PositionalConv(nn.Module):
    """Convolutional relative positional embedding `[B, N, D] -> [B, N, D]` (not yet added).

    Grouped Conv1d, `kernel` taps, `groups` groups, weight-normalised over the kernel axis:
    `W[t] = g[t] * v[t] / ||v[t]||` (Frobenius norm over input and output channels of tap t;
    torch `weight_norm(conv, dim=2)`). Parameters `weight_v` `[kernel, D / groups, D]`,
    `weight_g` `[kernel]`, `bias` `[D]`. Padding kernel // 2 on both sides; an even kernel
    drops the last output frame (transformers' `Wav2Vec2SamePadLayer`), so N is kept. GELU.
    """

    dim: int
    kernel: int
    groups: int
    activation: str = "gelu"
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        std = 2.0 * math.sqrt(1.0 / (self.kernel * self.dim))
        v = self.param(
            "weight_v",
            nn.initializers.normal(std),
            (self.kernel, self.dim // self.groups, self.dim),
            jnp.float32,
        )
        # torch's weight_norm initialises g to ||v||, so the initial weight is v.
        g = self.param("weight_g", lambda _: jnp.sqrt(jnp.sum(v * v, axis=(1, 2))))
        b = self.param("bias", nn.initializers.zeros_init(), (self.dim,), jnp.float32)
        w = v * (g / jnp.sqrt(jnp.sum(v * v, axis=(1, 2))))[:, None, None]
        pad = self.kernel // 2
        dt = x.dtype
        y = jax.lax.conv_general_dilated(
            x,
            w.astype(dt),
            window_strides=(1,),
            padding=[(pad, pad - (1 - self.kernel % 2))],
            dimension_numbers=("NWC", "WIO", "NWC"),
            feature_group_count=self.groups,
        )
        return ACTIVATIONS[self.activation](y + b.astype(dt))


class Attention(nn.Module):
    """Multi-head self-attention `[B, N, D] -> ([B, N, D], probs [B, H, N, N])`.

    `probs = softmax(Q K^T / sqrt(D / H))` over keys (float32), dropout on the probabilities
    (`dropout`, train mode), parameters `q_proj`, `k_proj`, `v_proj`, `out_proj` (D -> D, bias).
    The returned probabilities are those before dropout (as transformers' `attentions` in eval).
    """

    dim: int
    heads: int
    dropout: float = 0.0
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> tuple[jax.Array, jax.Array]:
        b, n, _ = x.shape
        dh = self.dim // self.heads

        def proj(name, y):
            return nn.Dense(self.dim, kernel_init=_DENSE_INIT, dtype=self.dtype, name=name)(y)

        q, k, v = (
            proj(nm, x).reshape(b, n, self.heads, dh) for nm in ("q_proj", "k_proj", "v_proj")
        )
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32) / math.sqrt(dh)
        probs = jax.nn.softmax(logits, axis=-1)
        p = nn.Dropout(self.dropout, deterministic=not train)(probs)
        y = jnp.einsum("bhqk,bkhd->bqhd", p.astype(v.dtype), v).reshape(b, n, self.dim)
        return proj("out_proj", y), probs


class FeedForward(nn.Module):
    """Position-wise FFN `[B, N, D] -> [B, N, D]`: Dense(ffn) -> activation ->
    Drop(activation_dropout) -> Dense(D) -> Drop(hidden_dropout)."""

    dim: int
    ffn: int
    activation: str
    hidden_dropout: float = 0.0
    activation_dropout: float = 0.0
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        y = nn.Dense(
            self.ffn, kernel_init=_DENSE_INIT, dtype=self.dtype, name="intermediate_dense"
        )(x)
        y = nn.Dropout(self.activation_dropout, deterministic=not train)(
            ACTIVATIONS[self.activation](y)
        )
        y = nn.Dense(self.dim, kernel_init=_DENSE_INIT, dtype=self.dtype, name="output_dense")(y)
        return nn.Dropout(self.hidden_dropout, deterministic=not train)(y)


class EncoderLayer(nn.Module):
    """One transformer layer `[B, N, D] -> ([B, N, D], probs [B, H, N, N])`.

    Post-LN (`stable_layer_norm=False`): `x = LN(x + Drop(MHSA(x)))`, `x = LN(x + FFN(x))`.
    Pre-LN (`True`): `x = x + Drop(MHSA(LN(x)))`, `x = x + FFN(LN(x))` (Drop: hidden_dropout).
    """

    dim: int
    heads: int
    ffn: int
    activation: str
    stable_layer_norm: bool
    eps: float
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> tuple[jax.Array, jax.Array]:
        def ln(name):
            return nn.LayerNorm(
                epsilon=self.eps, use_fast_variance=False, dtype=self.dtype, name=name
            )

        drop = nn.Dropout(self.hidden_dropout, deterministic=not train)
        attn = Attention(self.dim, self.heads, self.attention_dropout, self.dtype, name="attention")
        ffn = FeedForward(
            self.dim,
            self.ffn,
            self.activation,
            self.hidden_dropout,
            self.activation_dropout,
            self.dtype,
            name="feed_forward",
        )
        if self.stable_layer_norm:
            y, probs = attn(ln("layer_norm")(x), train=train)
            x = x + drop(y)
            x = x + ffn(ln("final_layer_norm")(x), train=train)
        else:
            y, probs = attn(x, train=train)
            x = ln("layer_norm")(x + drop(y))
            x = ln("final_layer_norm")(x + ffn(x, train=train))
        return x, probs


class FeatureEncoder(nn.Module):
    """The conv feature encoder: waveform `[B, S]` -> `[B, N, conv_dim[-1]]` (module docstring).

    `norm="group"`: GroupNorm on the first layer only; `"layer"`: LayerNorm after every layer.
    """

    conv_dim: tuple[int, ...]
    conv_kernel: tuple[int, ...]
    conv_stride: tuple[int, ...]
    conv_bias: bool
    norm: str
    activation: str
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x[..., None]  # [B, S, 1]: one input channel
        for i, (c, k, s) in enumerate(
            zip(self.conv_dim, self.conv_kernel, self.conv_stride, strict=True)
        ):
            norm = self.norm if (self.norm == "layer" or i == 0) else None
            x = ConvLayer(
                c, k, s, self.conv_bias, norm, self.activation, self.dtype, name=f"conv_layers_{i}"
            )(x)
        return x


class FeatureProjection(nn.Module):
    """LayerNorm over the conv channels -> Dense(dim) -> dropout: `[B, N, C] -> [B, N, dim]`."""

    dim: int
    eps: float
    dropout: float = 0.0
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        x = nn.LayerNorm(
            epsilon=self.eps, use_fast_variance=False, dtype=self.dtype, name="layer_norm"
        )(x)
        bound = math.sqrt(1.0 / x.shape[-1])
        x = nn.Dense(
            self.dim,
            kernel_init=_uniform(bound),
            bias_init=_uniform(bound),
            dtype=self.dtype,
            name="projection",
        )(x)
        return nn.Dropout(self.dropout, deterministic=not train)(x)


class Encoder(nn.Module):
    """Positional convolution + transformer layers: `[B, N, D] -> (out, hidden, probs)`.

    Returns the encoder output `[B, N, D]` (after the final LayerNorm for pre-LN), the hidden
    states `[L + 1]` x `[B, N, D]` (the first layer's input, then every layer's output; for
    pre-LN the last one is before the final LayerNorm, as transformers 5 reports them) and the
    attention probabilities `[L, B, H, N, N]`.
    """

    dim: int
    layers: int
    heads: int
    ffn: int
    activation: str
    stable_layer_norm: bool
    eps: float
    pos_kernel: int
    pos_groups: int
    pos_activation: str = "gelu"
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    layerdrop: float = 0.0
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool):
        x = x + PositionalConv(
            self.dim,
            self.pos_kernel,
            self.pos_groups,
            self.pos_activation,
            self.dtype,
            name="pos_conv_embed",
        )(x)
        ln = functools.partial(
            nn.LayerNorm,
            epsilon=self.eps,
            use_fast_variance=False,
            dtype=self.dtype,
            name="layer_norm",
        )
        if not self.stable_layer_norm:
            x = ln()(x)
        x = nn.Dropout(self.hidden_dropout, deterministic=not train)(x)
        hidden, probs = [x], []
        for i in range(self.layers):
            y, p = EncoderLayer(
                self.dim,
                self.heads,
                self.ffn,
                self.activation,
                self.stable_layer_norm,
                self.eps,
                self.hidden_dropout,
                self.attention_dropout,
                self.activation_dropout,
                self.dtype,
                name=f"layers_{i}",
            )(x, train=train)
            if train and self.layerdrop > 0:
                skip = jax.random.bernoulli(self.make_rng("dropout"), self.layerdrop)
                y = jnp.where(skip, x, y)
            x = y
            hidden.append(x)
            probs.append(p)
        if self.stable_layer_norm:
            x = ln()(x)
        return x, hidden, jnp.stack(probs)


class Model(nn.Module):
    """wav2vec 2.0 sequence classifier over raw 16 kHz waveforms `[B, S]` (module docstring).

    Attributes (transformers' `Wav2Vec2Config` names; defaults: the BASE architecture and
    transformers' default dropouts):
      num_classes: C (transformers' `num_labels`).
      hidden_size: D, 768.
      num_hidden_layers: L, 12.
      num_attention_heads: H, 12 (must divide D).
      intermediate_size: FFN width, 3072.
      hidden_act: FFN activation, "gelu" (exact erf GELU; also "gelu_new", "relu", "silu").
      conv_dim / conv_kernel / conv_stride: the feature encoder's channels, kernels and strides
        (samples), default 7 layers of 512 channels, (10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2):
        a frame every 320 samples (20 ms), receptive field 400 samples (25 ms).
      conv_bias: biases in the feature encoder's convolutions (base False, large-lv60 True).
      feat_extract_norm: "group" (base) or "layer" (large).
      feat_extract_activation: the feature encoder's and positional conv's activation, "gelu".
      num_conv_pos_embeddings / num_conv_pos_embedding_groups: positional conv kernel 128,
        groups 16 (must divide D).
      do_stable_layer_norm: pre-LN encoder (large) instead of post-LN (base).
      layer_norm_eps: epsilon of the feature projection's and encoder's LayerNorms, 1e-5.
      hidden_dropout, attention_dropout, activation_dropout, feat_proj_dropout: dropout rates
        (0.1, 0.1, 0.1, 0.0), active only with `train=True` and a "dropout" rng.
      layerdrop: probability of skipping each layer in train mode, 0.1 (module docstring).
      classifier_proj_size: projector width P, 256.
      use_weighted_layer_sum: the projector reads a softmax(`layer_weights`)-weighted sum of
        the L + 1 hidden states instead of the encoder output.
      normalize: standardise each clip (zero mean, unit variance, eps 1e-7) first, as the
        Hugging Face feature extractor does with `do_normalize=True` (set from
        `preprocessor_config.json` by `pretrained_kwargs`); default False (identity).
      dtype: computation dtype (None: float32); attention softmax in float32; outputs float32.

    Input: `[B, S]` float waveform at 16 kHz (the rate the checkpoints were trained at; the model
    itself does not know the rate), every clip of the batch the same length (no padding mask).

    Returns `(logits [B, C], feats)`: `attention` `[L, B, H, N, N]` (softmax probabilities,
    layer 0 first; N = frames, no class token), `frames` `[B, N, D]` (the encoder output:
    transformers' `last_hidden_state`), `embedding` `[B, P]` (projector output averaged over
    time: the classifier's input), `fmap{i}` `[B, N, D]` (layer i's output; transformers'
    `hidden_states[i + 1]`), `conv_features` `[B, N, conv_dim[-1]]` (the feature encoder's
    output, before the feature projection's LayerNorm).

    Raises:
      ValueError: input not `[B, S]`, S shorter than the conv stack's receptive field (names the
        minimum, `min_samples`), heads or groups not dividing D, unequal conv list lengths, an
        unknown norm or activation.

    Source: Baevski et al. 2020 (arXiv 2006.11477); transformers'
    `Wav2Vec2ForSequenceClassification` (modeling_wav2vec2.py), matched by
    tests/train/test_wav2vec2.py.
    """

    num_classes: int
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    conv_dim: tuple[int, ...] = (512,) * 7
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    conv_bias: bool = False
    feat_extract_norm: str = "group"
    feat_extract_activation: str = "gelu"
    num_conv_pos_embeddings: int = 128
    num_conv_pos_embedding_groups: int = 16
    do_stable_layer_norm: bool = False
    layer_norm_eps: float = 1e-5
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.1
    feat_proj_dropout: float = 0.0
    layerdrop: float = 0.1
    classifier_proj_size: int = 256
    use_weighted_layer_sum: bool = False
    normalize: bool = False
    dtype: Any = None

    def _check(self, x: jax.Array) -> None:
        check_input(NAME, x, 2, "a raw waveform [B, S]")
        n_conv = {len(self.conv_dim), len(self.conv_kernel), len(self.conv_stride)}
        if len(n_conv) != 1:
            raise ValueError(
                f"{NAME}: conv_dim, conv_kernel and conv_stride must have the same "
                f"length, got {self.conv_dim}, {self.conv_kernel}, {self.conv_stride}"
            )
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"{NAME}: num_attention_heads={self.num_attention_heads} must divide "
                f"hidden_size={self.hidden_size}"
            )
        if self.hidden_size % self.num_conv_pos_embedding_groups:
            raise ValueError(
                f"{NAME}: num_conv_pos_embedding_groups={self.num_conv_pos_embedding_groups}"
                f" must divide hidden_size={self.hidden_size}"
            )
        if self.feat_extract_norm not in ("group", "layer"):
            raise ValueError(
                f"{NAME}: feat_extract_norm={self.feat_extract_norm!r}, expected 'group' or 'layer'"
            )
        for field in ("hidden_act", "feat_extract_activation"):
            if getattr(self, field) not in ACTIVATIONS:
                raise ValueError(
                    f"{NAME}: {field}={getattr(self, field)!r}, expected one of {sorted(ACTIVATIONS)}"
                )
        need = min_samples(self.conv_kernel, self.conv_stride)
        if x.shape[1] < need:
            raise ValueError(
                f"{NAME}: the conv feature encoder needs at least {need} samples "
                f"({1000 * need / 16000:g} ms at 16 kHz), got a waveform of shape {tuple(x.shape)}"
            )

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False):
        self._check(x)
        x = cast_input(x, self.dtype)
        if self.normalize:
            xf = x.astype(jnp.float32)
            mu = xf.mean(axis=1, keepdims=True)
            x = ((xf - mu) / jnp.sqrt(xf.var(axis=1, keepdims=True) + 1e-7)).astype(x.dtype)
        conv = FeatureEncoder(
            tuple(self.conv_dim),
            tuple(self.conv_kernel),
            tuple(self.conv_stride),
            self.conv_bias,
            self.feat_extract_norm,
            self.feat_extract_activation,
            self.dtype,
            name="feature_extractor",
        )(x)
        h = FeatureProjection(
            self.hidden_size,
            self.layer_norm_eps,
            self.feat_proj_dropout,
            self.dtype,
            name="feature_projection",
        )(conv, train=train)
        out, hidden, attn = Encoder(
            self.hidden_size,
            self.num_hidden_layers,
            self.num_attention_heads,
            self.intermediate_size,
            self.hidden_act,
            self.do_stable_layer_norm,
            self.layer_norm_eps,
            self.num_conv_pos_embeddings,
            self.num_conv_pos_embedding_groups,
            self.feat_extract_activation,
            self.hidden_dropout,
            self.attention_dropout,
            self.activation_dropout,
            self.layerdrop,
            self.dtype,
            name="encoder",
        )(h, train=train)
        if self.use_weighted_layer_sum:
            n = self.num_hidden_layers + 1
            w = self.param("layer_weights", nn.initializers.constant(1.0 / n), (n,), jnp.float32)
            w = jax.nn.softmax(w).astype(out.dtype)
            pooled_in = jnp.einsum("l,lbnd->bnd", w, jnp.stack(hidden))
        else:
            pooled_in = out
        proj = nn.Dense(
            self.classifier_proj_size, kernel_init=_DENSE_INIT, dtype=self.dtype, name="projector"
        )(pooled_in)
        emb = proj.mean(axis=1)
        logits = nn.Dense(
            self.num_classes, kernel_init=_DENSE_INIT, dtype=self.dtype, name="classifier"
        )(emb)
        feats = {f"fmap{i}": hidden[i + 1] for i in range(self.num_hidden_layers)}
        feats |= {"frames": out, "embedding": emb, "attention": attn, "conv_features": conv}
        return logits.astype(jnp.float32), f32(feats)


# ---------------------------------------------------------------------------------------------
# Hugging Face checkpoints.

# `Model` fields read from a transformers `Wav2Vec2Config` (config.json); absent keys take the
# field's default, which is transformers' default.
CONFIG_FIELDS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "conv_dim",
    "conv_kernel",
    "conv_stride",
    "conv_bias",
    "feat_extract_norm",
    "feat_extract_activation",
    "num_conv_pos_embeddings",
    "num_conv_pos_embedding_groups",
    "do_stable_layer_norm",
    "layer_norm_eps",
    "hidden_dropout",
    "attention_dropout",
    "activation_dropout",
    "feat_proj_dropout",
    "layerdrop",
    "classifier_proj_size",
    "use_weighted_layer_sum",
)
# Parameters of the classification head (`Wav2Vec2ForSequenceClassification` only).
HEAD_KEYS = (
    "projector.weight",
    "projector.bias",
    "classifier.weight",
    "classifier.bias",
    "layer_weights",
)
# Top-level names of the backbone (`Wav2Vec2Model`) in a headless checkpoint's keys.
_BACKBONE_TOPS = (
    "feature_extractor",
    "feature_projection",
    "encoder",
    "masked_spec_embed",
    "adapter",
)
_POS = "wav2vec2.encoder.pos_conv_embed.conv."
# weight_norm's parameter names: torch >= 2.1 parametrisations, then the older weight_g/weight_v.
_G, _V = _POS + "parametrizations.weight.original0", _POS + "parametrizations.weight.original1"


class Converted(NamedTuple):
    """A converted state dict.

    Attributes:
      params: the Flax parameter tree of `Model`.
      missing: transformers keys the checkpoint lacked (only head keys: `projector.*`,
        `classifier.*`, `layer_weights`); those parameters are freshly initialised (or taken
        from `fill`).
      ignored: checkpoint keys not used (other heads: `quantizer.*`, `project_q.*`,
        `project_hid.*`, `lm_head.*`, ...; `masked_spec_embed`; a classifier replaced because
        `num_classes` differs).
    """

    params: dict
    missing: list[str]
    ignored: list[str]


class HFCheckpoint(NamedTuple):
    """A loaded Hugging Face checkpoint: `Model(**kwargs).apply({"params": params}, x)`.

    Attributes:
      kwargs: `Model` keyword arguments from config.json (`num_classes` included).
      params: the Flax parameter tree.
      missing, ignored: as in `Converted`.
    """

    kwargs: dict
    params: dict
    missing: list[str]
    ignored: list[str]


def _as_config_dict(config: Any) -> dict:
    if hasattr(config, "to_dict"):  # a transformers Wav2Vec2Config
        config = config.to_dict()
    if not isinstance(config, Mapping):
        raise TypeError(
            f"{NAME}: config must be a dict (config.json) or a Wav2Vec2Config, got {type(config).__name__}"
        )
    return dict(config)


def config_to_kwargs(config: Mapping[str, Any] | Any) -> dict[str, Any]:
    """`Model` keyword arguments (with `num_classes`) from a transformers wav2vec 2.0 config.

    Args:
      config: the parsed `config.json` dict, or a `transformers.Wav2Vec2Config`.

    Returns:
      `{field: value}` for `CONFIG_FIELDS` (absent keys: transformers' defaults) and
      `num_classes` (`num_labels`, else the size of `id2label`, else 2 as in transformers).

    Raises:
      ValueError: `model_type` is not "wav2vec2", adapters are configured, or
        `feat_extract_norm` is neither "group" nor "layer".
    """
    cfg = _as_config_dict(config)
    if cfg.get("model_type", NAME) != NAME:
        raise ValueError(
            f"{NAME}: config model_type={cfg.get('model_type')!r}, expected 'wav2vec2'"
        )
    if cfg.get("add_adapter") or cfg.get("adapter_attn_dim"):
        raise ValueError(f"{NAME}: adapters (add_adapter / adapter_attn_dim) are not supported")
    defaults = {f.name: f.default for f in dataclasses.fields(Model) if f.name in CONFIG_FIELDS}
    kw = {k: cfg.get(k, defaults[k]) for k in CONFIG_FIELDS}
    for k in ("conv_dim", "conv_kernel", "conv_stride"):
        kw[k] = tuple(int(v) for v in kw[k])
    if kw["feat_extract_norm"] not in ("group", "layer"):
        raise ValueError(
            f"{NAME}: config feat_extract_norm={kw['feat_extract_norm']!r}, expected 'group' or 'layer'"
        )
    n = cfg.get("num_labels") or len(cfg.get("id2label") or {}) or 2
    return {"num_classes": int(n)} | kw


def _hf_key(path: tuple[str, ...]) -> str:
    """transformers state-dict key of a Flax parameter path (canonical, new weight_norm names)."""
    if path[:2] == ("encoder", "pos_conv_embed"):
        return {"weight_g": _G, "weight_v": _V, "bias": _POS + "bias"}[path[2]]
    parts = []
    for p in path[:-1]:
        m = re.fullmatch(r"(conv_layers|layers)_(\d+)", p)
        parts += [m.group(1), m.group(2)] if m else [p]
    parts.append("weight" if path[-1] in ("kernel", "scale") else path[-1])
    key = ".".join(parts)
    return key if path[0] in ("projector", "classifier", "layer_weights") else "wav2vec2." + key


def _to_flax(leaf: str, a: np.ndarray) -> np.ndarray:
    """A torch tensor's layout as the Flax leaf `leaf` wants it."""
    if leaf == "kernel" and a.ndim == 2:  # Linear [out, in] -> Dense [in, out]
        return a.T
    if (
        leaf == "kernel" and a.ndim == 3
    ) or leaf == "weight_v":  # Conv1d [out, in/g, k] -> [k, in/g, out]
        return a.transpose(2, 1, 0)
    if leaf == "weight_g":  # [1, 1, k] (weight_norm over dim 2) -> [k]
        return a.reshape(-1)
    return a


def _to_numpy(v: Any) -> np.ndarray:
    if hasattr(v, "detach"):  # a torch tensor (bfloat16/float16 included)
        v = v.detach().cpu()
        if v.is_floating_point():
            v = v.float()
        v = v.numpy()
    return np.asarray(v, np.float32)


def _normalise_keys(state_dict: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Checkpoint keys in the canonical `Wav2Vec2ForSequenceClassification` form.

    A headless `Wav2Vec2Model` checkpoint gets the `wav2vec2.` prefix; the old weight_norm names
    (`weight_g`/`weight_v`) become the parametrisation names; a positional conv saved without
    weight norm (`conv.weight`) is split into g = ||w|| per tap and v = w (so g v / ||v|| = w).
    """
    out = {}
    for k, v in state_dict.items():
        if not k.startswith("wav2vec2.") and k.split(".")[0] in _BACKBONE_TOPS:
            k = "wav2vec2." + k
        a = _to_numpy(v)
        if k == _POS + "weight_g":
            k = _G
        elif k == _POS + "weight_v":
            k = _V
        elif k == _POS + "weight":
            out[_G] = np.sqrt(np.sum(a * a, axis=(0, 1), keepdims=True))
            k = _V
        out[k] = a
    return out


def _fmt(keys: Sequence[str], n: int = 8) -> str:
    keys = sorted(keys)
    more = f" ... and {len(keys) - n} more" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def _fresh_head(kw: Mapping[str, Any], rng: jax.Array) -> dict:
    """The head's parameters as `Model.init` creates them (same initialisers)."""
    k1, k2 = jax.random.split(rng)
    d, p = kw["hidden_size"], kw["classifier_proj_size"]
    head = {
        "projector": nn.Dense(p, kernel_init=_DENSE_INIT).init(k1, jnp.zeros((1, d)))["params"],
        "classifier": nn.Dense(kw["num_classes"], kernel_init=_DENSE_INIT).init(
            k2, jnp.zeros((1, p))
        )["params"],
    }
    if kw["use_weighted_layer_sum"]:
        n = kw["num_hidden_layers"] + 1
        head["layer_weights"] = jnp.full((n,), 1.0 / n, jnp.float32)
    return head


def param_shapes(kw: Mapping[str, Any]) -> dict:
    """The `Model(**kw)` parameter tree as `jax.ShapeDtypeStruct`s (no computation)."""
    model = Model(**kw)
    x = jnp.zeros((1, min_samples(model.conv_kernel, model.conv_stride)), jnp.float32)
    return jax.eval_shape(lambda: model.init(jax.random.key(0), x))["params"]


def params_from_torch_state_dict(
    state_dict: Mapping[str, Any],
    config: Mapping[str, Any] | Any,
    *,
    num_classes: int | None = None,
    fill: Mapping[str, Any] | None = None,
    rng: jax.Array | None = None,
    source: str = "state_dict",
) -> Converted:
    """Converts a transformers wav2vec 2.0 state dict into `Model`'s Flax parameters.

    Linear weights `[out, in]` become Dense kernels `[in, out]`, Conv1d weights `[out, in/g, k]`
    Flax conv kernels `[k, in/g, out]`, LayerNorm/GroupNorm `weight` `scale`; the positional
    conv's weight norm is kept as `weight_g` `[k]` / `weight_v` (both the
    `parametrizations.weight.original0/1` and the older `weight_g`/`weight_v` names are read).

    Args:
      state_dict: key -> torch tensor or NumPy array, of `Wav2Vec2ForSequenceClassification`,
        or of a headless model (`Wav2Vec2Model`, `Wav2Vec2ForPreTraining`, `Wav2Vec2ForCTC`):
        its head is then initialised and reported in `missing`.
      config: the checkpoint's `config.json` dict or `Wav2Vec2Config` (`config_to_kwargs`).
      num_classes: the classifier's size (default: the config's); a checkpoint classifier of
        another size is then ignored and the classifier initialised.
      fill: a `Model` parameter tree whose values are used for missing head parameters
        (default: fresh initialisation with `rng`).
      rng: key for freshly initialised head parameters (default `jax.random.key(0)`).
      source: the file name used in error messages.

    Returns:
      `Converted(params, missing, ignored)`.

    Raises:
      ValueError: backbone keys missing, unexpected backbone/head keys, or shape mismatches
        (each error names `source` and the keys with their shapes); see also
        `config_to_kwargs`.
    """
    kw = config_to_kwargs(config)
    if num_classes is not None:
        kw["num_classes"] = int(num_classes)
    shapes = param_shapes(kw)
    flat = {
        tuple(k.key for k in path): s for path, s in jax.tree_util.tree_leaves_with_path(shapes)
    }
    expected = {_hf_key(p): p for p in flat}
    sd = _normalise_keys(state_dict)
    ignored = [
        k
        for k in sd
        if k not in expected
        and k not in HEAD_KEYS
        and (not k.startswith("wav2vec2.") or k == "wav2vec2.masked_spec_embed")
    ]
    unexpected = [k for k in sd if k not in expected and k not in ignored]
    if unexpected:
        raise ValueError(
            f"{NAME}: {source}: unexpected keys for the config's architecture "
            f"({kw['num_hidden_layers']} layers, use_weighted_layer_sum={kw['use_weighted_layer_sum']}): "
            f"{_fmt(unexpected)}"
        )
    bad, values = [], {}
    for key, path in expected.items():
        if key not in sd:
            continue
        a = _to_flax(path[-1], sd[key])
        want = tuple(flat[path].shape)
        if a.shape == want:
            values[path] = a
        elif num_classes is not None and path[0] == "classifier":
            ignored.append(key)  # another label set: the classifier is re-initialised
        else:
            bad.append(f"{key} {tuple(sd[key].shape)} (as Flax {a.shape}, expected {want})")
    if bad:
        raise ValueError(
            f"{NAME}: {source}: shape mismatch with config.json's architecture: {_fmt(bad, 6)}"
        )
    missing = [k for k, p in expected.items() if p not in values]
    backbone_missing = [k for k in missing if k.startswith("wav2vec2.")]
    if backbone_missing:
        raise ValueError(f"{NAME}: {source}: missing keys: {_fmt(backbone_missing)}")
    fresh = None
    if missing and fill is None:
        fresh = _fresh_head(kw, jax.random.key(0) if rng is None else rng)
    params: dict = {}
    for path in flat:
        if path in values:
            leaf = jnp.asarray(values[path])
        else:
            node: Any = fill if fill is not None else fresh
            for p in path:
                node = node[p]
            leaf = jnp.asarray(node)
        node = params
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = leaf
    return Converted(params, sorted(missing), sorted(ignored))


def read_config(path: str | os.PathLike) -> dict:
    """The parsed `config.json` of a Hugging Face checkpoint directory.

    Raises:
      FileNotFoundError: no config.json in `path` (names the file).
    """
    f = os.path.join(os.fspath(path), "config.json")
    if not os.path.isfile(f):
        raise FileNotFoundError(
            f"{NAME}: {f} not found (expected a Hugging Face checkpoint directory "
            "with config.json and model.safetensors or pytorch_model.bin)"
        )
    with open(f) as fh:
        return json.load(fh)


def _load_safetensors(file: str) -> dict[str, Any]:
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise ImportError(
            f"{NAME}: reading {file} needs safetensors (pip install safetensors, or kdjax[hf])"
        ) from None
    try:
        return load_file(file)
    except (TypeError, ValueError):  # bfloat16 has no NumPy dtype: read those through torch
        try:
            from safetensors.torch import load_file as load_torch
        except ImportError:
            raise ImportError(
                f"{NAME}: {file} holds tensors NumPy cannot read (bfloat16?); "
                "reading them needs torch"
            ) from None
        return load_torch(file)


def _load_bin(file: str) -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        raise ImportError(
            f"{NAME}: reading the PyTorch checkpoint {file} needs torch (pip install torch), "
            "or convert it to model.safetensors"
        ) from None
    return torch.load(file, map_location="cpu", weights_only=True)


def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, Any], str]:
    """The state dict of a Hugging Face checkpoint directory and the file(s) it came from.

    Looks for `model.safetensors`, then a sharded `model.safetensors.index.json`, then
    `pytorch_model.bin` (needs torch).

    Raises:
      FileNotFoundError: none of them in `path`; ImportError: safetensors/torch missing.
    """
    d = os.fspath(path)
    st, idx, pt = (
        os.path.join(d, f)
        for f in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
    )
    if os.path.isfile(st):
        return dict(_load_safetensors(st)), st
    if os.path.isfile(idx):
        with open(idx) as fh:
            shards = sorted(set(json.load(fh)["weight_map"].values()))
        sd: dict[str, Any] = {}
        for s in shards:
            sd |= _load_safetensors(os.path.join(d, s))
        return sd, idx
    if os.path.isfile(pt):
        return dict(_load_bin(pt)), pt
    raise FileNotFoundError(
        f"{NAME}: no model.safetensors, model.safetensors.index.json or pytorch_model.bin in {d}"
    )


def load_hf_checkpoint(
    path: str | os.PathLike, *, num_classes: int | None = None, rng: jax.Array | None = None
) -> HFCheckpoint:
    """Loads a local Hugging Face wav2vec 2.0 checkpoint directory (no network access).

    Args:
      path: a directory with `config.json` and `model.safetensors` (read without torch) or
        `pytorch_model.bin` (read with torch), e.g. from
        `hf download facebook/wav2vec2-base --local-dir <path>` (huggingface_hub's CLI).
      num_classes: the classifier's size (default: config.json's `num_labels`); see
        `params_from_torch_state_dict`.
      rng: key for freshly initialised head parameters.

    Returns:
      `HFCheckpoint(kwargs, params, missing, ignored)`:
      `Model(**kwargs).apply({"params": params}, waveform)` is the checkpoint's model;
      `missing` lists the head keys a headless checkpoint lacked (freshly initialised).

    Raises:
      FileNotFoundError, ImportError: see `read_config` / `read_state_dict`.
      ValueError: see `params_from_torch_state_dict`.
    """
    config = read_config(path)
    sd, source = read_state_dict(path)
    conv = params_from_torch_state_dict(sd, config, num_classes=num_classes, rng=rng, source=source)
    kw = config_to_kwargs(config)
    if num_classes is not None:
        kw["num_classes"] = int(num_classes)
    return HFCheckpoint(kw, conv.params, conv.missing, conv.ignored)


# ---------------------------------------------------------------------------------------------
# The platform hook (`models.<name>.pretrained`, kdjax.train.program).


def pretrained_kwargs(path: str | os.PathLike) -> dict[str, Any]:
    """`Model` keyword arguments of a checkpoint directory, without `num_classes` (the data's).

    The architecture and dropout fields of config.json, and `normalize` from
    `preprocessor_config.json`'s `do_normalize` when that file exists. A config's own `kw`
    override these.

    Raises:
      FileNotFoundError / ValueError: see `read_config` / `config_to_kwargs`.
    """
    kw = config_to_kwargs(read_config(path))
    del kw["num_classes"]
    pre = os.path.join(os.fspath(path), "preprocessor_config.json")
    if os.path.isfile(pre):
        with open(pre) as fh:
            kw["normalize"] = bool(json.load(fh).get("do_normalize", False))
    return kw


def load_pretrained(path: str | os.PathLike, params: Mapping[str, Any]) -> dict:
    """`params` (a freshly initialised `Model` tree) with the checkpoint's values in place.

    Head parameters the checkpoint lacks, or whose classifier has another number of classes
    than `params`, keep their values from `params` (a warning names them), so a headless or
    differently-labelled checkpoint is fine-tuned with a fresh head.

    Raises:
      ValueError: the model's architecture (its `kw`) differs from the checkpoint's config.json
        (names the parameters), plus the errors of `load_hf_checkpoint`.
    """
    num_classes = int(params["classifier"]["kernel"].shape[-1])
    sd, source = read_state_dict(path)
    conv = params_from_torch_state_dict(
        sd, read_config(path), num_classes=num_classes, fill=params, source=source
    )
    want = {
        jax.tree_util.keystr(p): tuple(np.shape(a))
        for p, a in jax.tree_util.tree_leaves_with_path(params)
    }
    got = {
        jax.tree_util.keystr(p): tuple(a.shape)
        for p, a in jax.tree_util.tree_leaves_with_path(conv.params)
    }
    if want != got:
        diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
        raise ValueError(
            f"{NAME}: pretrained={os.fspath(path)!r}: the model's architecture differs from the "
            "checkpoint's config.json (leave architecture fields out of kw: they are read from it): "
            + _fmt([f"{k} model {want.get(k)} checkpoint {got.get(k)}" for k in diff], 6)
        )
    if conv.missing:
        warnings.warn(
            f"{NAME}: {source} has no {_fmt(conv.missing)}; kept at their initialisation",
            stacklevel=2,
        )
    return jax.tree.map(
        lambda a, b: jnp.asarray(a, jnp.asarray(b).dtype), conv.params, dict(params)
    )
