"""Transformer encoder over spectrogram frames with a class token (AST-style, 1-D patches).

Gong, Chung, Glass, "AST: Audio Spectrogram Transformer" (Interspeech 2021; YuanGongND/ast) with
ViT/DeiT's class token and learned positional embeddings (Dosovitskiy et al., ICLR 2021;
google-research/vision_transformer), but the patches are 1-D: `patch` consecutive frames of all F
mel bins, taken every `stride` frames, linearly embedded (`patch = stride = 1`: one token per
frame). Pre-LN blocks (Xiong et al., "On Layer Normalization in the Transformer Architecture",
ICML 2020), as ViT: x + MHSA(LN(x)), x + MLP(LN(x)), a final LN.

The attention is written out here so that every layer's softmax probabilities are returned
(`feats["attention"]`, the input of `kdjax.losses.attention_rollout` and
`temporal_attention_kd`: Temporal KD's teacher). The key projection has no bias: a key bias adds
`q . b_k`, the same for every key of a query, which the softmax cancels, so its gradient is
identically zero (Whisper drops it for the same reason).
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from kdjax.models._common import cast_input, check_input, f32


def frame_patches(x: jax.Array, patch: int, stride: int) -> jax.Array:
    """Stacks `patch` consecutive frames every `stride` frames: `[B, T, F] -> [B, N, patch * F]`.

    N = (T - patch) // stride + 1 (frames that do not fill a last patch are dropped). Patch n
    holds frames `n * stride ... n * stride + patch - 1`, frame-major.
    """
    b, t, f = x.shape
    if patch == 1 and stride == 1:
        return x
    n = (t - patch) // stride + 1
    idx = np.arange(n)[:, None] * stride + np.arange(patch)[None, :]  # [N, patch], static
    return jnp.take(x, idx, axis=1).reshape(b, n, patch * f)


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention: `[B, N, D] -> ([B, N, D], probs [B, H, N, N])`.

    `probs = softmax(Q K^T / sqrt(D / H))` per head, computed in float32; parameters "query"
    (D -> D, bias), "key" (D -> D, no bias), "value" (D -> D, bias), "out" (D -> D, bias).
    """

    dim: int
    heads: int
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        b, n, _ = x.shape
        dh = self.dim // self.heads

        def split(y):
            return y.reshape(b, n, self.heads, dh)

        q = split(nn.Dense(self.dim, dtype=self.dtype, name="query")(x))
        k = split(nn.Dense(self.dim, use_bias=False, dtype=self.dtype, name="key")(x))
        v = split(nn.Dense(self.dim, dtype=self.dtype, name="value")(x))
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32) / math.sqrt(dh)
        probs = jax.nn.softmax(logits, axis=-1)
        y = jnp.einsum("bhqk,bkhd->bqhd", probs.astype(v.dtype), v).reshape(b, n, self.dim)
        return nn.Dense(self.dim, dtype=self.dtype, name="out")(y), probs


class Block(nn.Module):
    """Pre-LN encoder block: `x + Dropout(MHSA(LN(x)))`, then `x + Dropout(MLP(LN(x)))` (GELU MLP).

    `[B, N, D] -> ([B, N, D], attention probs [B, H, N, N])`.
    """

    dim: int
    heads: int
    mlp_dim: int
    dropout: float = 0.0
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> tuple[jax.Array, jax.Array]:
        y, probs = SelfAttention(self.dim, self.heads, self.dtype, name="attn")(
            nn.LayerNorm(dtype=self.dtype, name="ln1")(x)
        )
        x = x + nn.Dropout(self.dropout, deterministic=not train)(y)
        y = nn.LayerNorm(dtype=self.dtype, name="ln2")(x)
        y = nn.gelu(nn.Dense(self.mlp_dim, dtype=self.dtype, name="mlp1")(y))
        y = nn.Dense(self.dim, dtype=self.dtype, name="mlp2")(y)
        return x + nn.Dropout(self.dropout, deterministic=not train)(y), probs


class Model(nn.Module):
    """Frame transformer classifier over `[B, T, F]` features.

    Attributes:
      num_classes: C.
      dim: token width D.
      depth: number of blocks L.
      heads: attention heads H (must divide D).
      mlp_dim: hidden width of the MLPs (None: 4 D).
      patch: frames stacked per token.
      stride: frames between tokens (= patch: no overlap; AST overlaps its 2-D patches).
      max_tokens: number of learned positional embeddings (class token included); longer inputs
        raise ValueError.
      dropout: dropout on the embedded tokens and on each residual branch.
      dtype: computation dtype (None: float32); the softmax runs in float32; logits/feats float32.

    Input `[B, T, F]`. Returns `(logits [B, C], feats)`: `attention` `[L, B, H, N, N]` (softmax
    probabilities of every layer, layer 0 first; token 0 is the class token, N = tokens + 1),
    `frames` = final token outputs without the class token `[B, N - 1, D]`, `embedding` = the
    class token's output `[B, D]` (after the final LN; the classifier's input), `fmap{i}` =
    block i's token outputs without the class token `[B, N - 1, D]`.

    Raises:
      ValueError: input not `[B, T, F]`, `T < patch`, more than `max_tokens` tokens, or `heads`
        not dividing `dim`.
    """

    num_classes: int
    dim: int = 64
    depth: int = 2
    heads: int = 4
    mlp_dim: int | None = None
    patch: int = 1
    stride: int = 1
    max_tokens: int = 1025
    dropout: float = 0.0
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False):
        check_input("transformer", x)
        if self.dim % self.heads:
            raise ValueError(f"transformer: heads={self.heads} must divide dim={self.dim}")
        if x.shape[1] < self.patch:
            raise ValueError(
                f"transformer: needs T >= patch={self.patch}, got features of shape {tuple(x.shape)}"
            )
        tok = frame_patches(cast_input(x, self.dtype), self.patch, self.stride)
        tok = nn.Dense(self.dim, dtype=self.dtype, name="embed")(tok)
        b, n = tok.shape[0], tok.shape[1] + 1
        if n > self.max_tokens:
            raise ValueError(
                f"transformer: {n} tokens (class token included) exceed max_tokens={self.max_tokens}"
            )
        cls = self.param("cls", nn.initializers.zeros_init(), (1, 1, self.dim), jnp.float32)
        pos = self.param(
            "pos_embedding", nn.initializers.normal(0.02), (self.max_tokens, self.dim), jnp.float32
        )
        h = jnp.concatenate(
            [jnp.broadcast_to(cls, (b, 1, self.dim)).astype(tok.dtype), tok], axis=1
        )
        h = h + pos[None, :n].astype(h.dtype)
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
        feats, attn = {}, []
        mlp_dim = self.mlp_dim or 4 * self.dim
        for i in range(self.depth):
            h, probs = Block(
                self.dim, self.heads, mlp_dim, self.dropout, self.dtype, name=f"block{i}"
            )(h, train=train)
            attn.append(probs)
            feats[f"fmap{i}"] = h[:, 1:]
        h = nn.LayerNorm(dtype=self.dtype, name="ln_final")(h)
        emb = h[:, 0]
        logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(emb)
        feats |= {"frames": h[:, 1:], "embedding": emb, "attention": jnp.stack(attn)}
        return logits.astype(jnp.float32), f32(feats)
