"""Temporal attention head: a learned query scores a student's frames; softmax over time.

Choi, Kersner, Morton, Chang, "Temporal Knowledge Distillation for On-device Audio
Classification" (ICASSP 2022, arXiv 2110.14131): a training-only attention module on top of the
student's frame features produces a distribution over frames, which is matched to the rolled-out
class-token attention of a transformer teacher (`kdjax.losses.temporal_attention_kd`; the
weights, or the scores with `student_is_logits=True`). The module is dropped at inference.

Scoring (`mode`):
  "dense"  s_t = w . h_t (a Dense layer to a scalar; with `hidden > 0`, additive attention
           s_t = w . tanh(W h_t + b), Bahdanau et al. 2015 / Yang et al. 2016).
  "query"  s_t = q . h_t / sqrt(D) with a learned query vector q (dot-product attention).
No bias on the scalar score: a constant added to every s_t cancels in the softmax, so its gradient
is identically zero.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from kdjax.models._common import cast_input, check_input, f32

MODES = ("dense", "query")


class Model(nn.Module):
    """Temporal attention pooling over frames `[B, T, D]`.

    Attributes:
      num_classes: only used when `classifier=True` (a Dense on the pooled embedding, returned as
        `feats["class_logits"]`); present so every model has the same signature.
      mode: "dense" or "query" (module docstring).
      hidden: "dense" mode: width of the tanh layer (0: a single Dense to the score).
      classifier: add the optional classifier.
      dtype: computation dtype (None: float32); the softmax runs in float32; outputs float32.

    Input: a student's `frames` `[B, T, D]` (not a spectrogram). Returns
    `(scores [B, T], feats)`: the scores take the place of the logits (the attention logits);
    feats `weights` = softmax_t(scores) `[B, T]` (rows sum to 1), `embedding` =
    `sum_t weights_t frames_t` `[B, D]`, and `class_logits` `[B, C]` if `classifier`. The scores
    are per frame, so permuting the frames permutes scores and weights and leaves the embedding
    unchanged.

    Raises:
      ValueError: input not `[B, T, D]` or unknown `mode`.
    """

    num_classes: int = 0
    mode: str = "dense"
    hidden: int = 0
    classifier: bool = False
    dtype: Any = None

    @nn.compact
    def __call__(self, frames: jax.Array, *, train: bool = False):
        del train  # no dropout/BN: the head is a scoring function
        check_input("attention_head", frames, 3, "a student's frames [B, T, D]")
        if self.mode not in MODES:
            raise ValueError(f"attention_head: mode={self.mode!r}, expected one of {MODES}")
        h = cast_input(frames, self.dtype)
        d = h.shape[-1]
        if self.mode == "dense":
            z = h
            if self.hidden > 0:
                z = jnp.tanh(nn.Dense(self.hidden, dtype=self.dtype, name="hidden")(z))
            scores = nn.Dense(1, use_bias=False, dtype=self.dtype, name="score")(z)[..., 0]
        else:
            q = self.param("query", nn.initializers.normal(1.0), (d,), jnp.float32)
            scores = jnp.einsum("btd,d->bt", h, q.astype(h.dtype)) / math.sqrt(d)
        scores = scores.astype(jnp.float32)
        weights = jax.nn.softmax(scores, axis=-1)
        emb = jnp.einsum("bt,btd->bd", weights, frames.astype(jnp.float32))
        feats = {"weights": weights, "embedding": emb}
        if self.classifier:
            if self.num_classes < 1:
                raise ValueError(
                    f"attention_head: classifier=True needs num_classes >= 1, got {self.num_classes}"
                )
            feats["class_logits"] = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(
                cast_input(emb, self.dtype)
            )
        return scores, f32(feats)
