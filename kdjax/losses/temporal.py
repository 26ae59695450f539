"""Temporal KD: attention rollout of a transformer teacher and the attention-distribution KL.

Imports only jax and the Python standard library.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

from kdjax.losses._utils import check_ndim
from kdjax.losses.features import time_alignment_matrix

Array = jax.Array

__all__ = ["attention_rollout", "rollout_frame_distribution", "temporal_attention_kd"]

_HI = jax.lax.Precision.HIGHEST


def attention_rollout(
    attention: Array,
    *,
    head_fusion: Literal["mean", "max", "min"] = "mean",
    add_residual: bool = True,
) -> Array:
    """Attention rollout: how much each input token flows into each output token through all layers.

    Formula: per layer ``l``, ``A_l = fuse_h attention[l]`` (mean over heads by default),
    ``A~_l = A_l + I`` (residual connection; off with ``add_residual=False``), rows normalised to
    sum 1, then ``R = A~_L A~_{L-1} ... A~_1`` (``R_l = A~_l R_{l-1}``, ``R_0 = I``). With
    attention rows summing to 1, ``A + I`` renormalised equals the paper's ``0.5 A + 0.5 I``.
    Rows of ``R`` sum to 1.

    Args:
      attention: ``[L, B, H, N, N]`` attention weights (rows = queries, softmax-normalised),
        layer 0 first (the model's ``feats["attention"]``).
      head_fusion: ``"mean"`` (paper, default), ``"max"`` or ``"min"`` over heads (the reference
        code's options).
      add_residual: add the identity before renormalising (paper: yes).

    Returns:
      ``[B, N, N]``; row ``i`` is token ``i``'s attribution over input tokens.

    Raises:
      ValueError: if ``attention`` is not ``[L, B, H, N, N]`` with square maps, or ``head_fusion`` is unknown.

    Source: Abnar & Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020, Sec. 3;
    code samiraabnar/attention_flow; jacobgil/vit-explain.
    """
    check_ndim("attention", attention, 5, "[L, B, H, N, N]")
    if attention.shape[-1] != attention.shape[-2]:
        raise ValueError(
            f"attention must have square maps [L, B, H, N, N], got {tuple(attention.shape)}"
        )
    if head_fusion == "mean":
        a = jnp.mean(attention, axis=2)
    elif head_fusion == "max":
        a = jnp.max(attention, axis=2)
    elif head_fusion == "min":
        a = jnp.min(attention, axis=2)
    else:
        raise ValueError(f"head_fusion must be 'mean', 'max' or 'min', got {head_fusion!r}")
    n = a.shape[-1]
    eye = jnp.eye(n, dtype=a.dtype)
    if add_residual:
        a = a + eye
    a = a / jnp.sum(a, axis=-1, keepdims=True)

    def step(r: Array, a_l: Array) -> tuple[Array, None]:
        return jnp.einsum("bij,bjk->bik", a_l, r, precision=_HI), None

    r0 = jnp.broadcast_to(eye, a.shape[1:])
    r, _ = jax.lax.scan(step, r0, a)
    return r


def rollout_frame_distribution(
    teacher_attention: Array,
    *,
    cls_index: int | None = 0,
    drop_query: bool = True,
    head_fusion: Literal["mean", "max", "min"] = "mean",
    add_residual: bool = True,
) -> Array:
    """The teacher's temporal target before time alignment: one rollout row over the frame tokens.

    Three conventions (the recipe's ``rollout_row``):

    * ``cls``: ``cls_index = c``, ``drop_query=True`` (a class-token model, e.g.
      ``kdjax.models.transformer``, AST, ViT): row ``c`` of the rollout ``R`` with its own entry
      dropped (``N - 1`` frame tokens in time order).
    * ``first``: ``cls_index = 0``, ``drop_query=False`` (a model without a class token, e.g.
      wav2vec 2.0, whose tokens are all frames): row 0 of ``R`` kept whole, ``N`` frame tokens.
      This is the paper's "row of the first token" read literally for wav2vec 2.0.
    * ``mean``: ``cls_index=None``: the mean of all rows of ``R`` (how much each token flows into
      a mean-pooled output, wav2vec 2.0's classifier read-out), ``N`` tokens.

    The row is renormalised to sum 1.

    Args:
      teacher_attention: ``[L, B, H, N, N]`` attention weights (rolled out here with
        ``head_fusion`` / ``add_residual``, see ``attention_rollout``) or a rollout ``[B, N, N]``.
      cls_index: the query token whose row is taken, or None (mean over query rows, no token
        dropped).
      drop_query: drop the query token's own entry from its row (``N - 1`` entries; a class
        token is not a frame) or keep the row whole (``False``: ``N`` entries, the query token
        is a frame). Must be True with ``cls_index=None``.
      head_fusion, add_residual: as ``attention_rollout`` (unused for a ``[B, N, N]`` rollout).

    Returns:
      ``[B, N - 1]`` (``cls_index`` given, ``drop_query``) or ``[B, N]``; rows sum to 1.

    Raises:
      ValueError: ``teacher_attention`` not 5-D/3-D with square maps, a ``cls_index`` outside
        ``[0, N)``, ``N < 2``, or ``drop_query=False`` with ``cls_index=None``.

    Source: Choi et al., ICASSP 2022 (arXiv 2110.14131), "Temporal KD" target; Abnar & Zuidema
    2020 (rollout).
    """
    if teacher_attention.ndim == 5:
        teacher_attention = attention_rollout(
            teacher_attention, head_fusion=head_fusion, add_residual=add_residual
        )
    check_ndim("teacher_attention", teacher_attention, 3, "[B, N, N] (rollout) or [L, B, H, N, N]")
    n = teacher_attention.shape[-1]
    if teacher_attention.shape[-2] != n:
        raise ValueError(
            f"teacher_attention must have square maps, got {tuple(teacher_attention.shape)}"
        )
    if cls_index is None:
        if not drop_query:
            raise ValueError(
                "drop_query=False needs a query token (cls_index); cls_index=None takes the mean "
                "of all rows and drops no token"
            )
        frames = jnp.mean(teacher_attention, axis=1)
    else:
        if not 0 <= cls_index < n or n < 2:
            raise ValueError(f"cls_index={cls_index} must index one of N={n} >= 2 tokens")
        row = teacher_attention[:, cls_index, :]
        if drop_query:
            frames = jnp.concatenate([row[:, :cls_index], row[:, cls_index + 1 :]], axis=-1)
        else:
            frames = row
    return frames / jnp.sum(frames, axis=-1, keepdims=True)


def _teacher_frame_distribution(teacher: Array, t_student: int, **row_kw) -> Array:
    if teacher.ndim != 2:
        teacher = rollout_frame_distribution(teacher, **row_kw)
    frames = teacher / jnp.sum(teacher, axis=-1, keepdims=True)
    w = time_alignment_matrix(frames.shape[-1], t_student, "interpolate").astype(frames.dtype)
    out = jnp.einsum("ot,bt->bo", w, frames, precision=_HI)
    return out / jnp.sum(out, axis=-1, keepdims=True)


def temporal_attention_kd(
    student_attention: Array,
    teacher_attention: Array,
    *,
    student_is_logits: bool = False,
    temperature: float = 1.0,
    direction: Literal["teacher_student", "student_teacher"] = "teacher_student",
    cls_index: int | None = 0,
    drop_query: bool = True,
    head_fusion: Literal["mean", "max", "min"] = "mean",
    add_residual: bool = True,
    eps: float = 1e-12,
) -> Array:
    """Temporal KD: KL between the teacher's rolled-out class-token attention over frames and the student's.

    Teacher target: rollout ``R`` (computed here from ``[L, B, H, N, N]``, or given as
    ``[B, N, N]``), row ``cls_index``, the class token's own entry dropped (a distribution over
    the ``N - 1`` frame tokens; ``rollout_frame_distribution``, which can also be computed once
    and cached, then given here as ``[B, N']``), renormalised, linearly interpolated to the student's ``T``
    (half-pixel centres, ``align_time(..., "interpolate")``), renormalised: ``a^t``. Student:
    ``a^s = softmax(z / tau)`` if ``student_is_logits`` else its weights. With ``tau != 1`` the
    teacher is sharpened/softened the same way: ``a^t <- softmax(log a^t / tau)`` (and weights
    ``a^s <- softmax(log a^s / tau)``).

    Loss: ``direction="teacher_student"`` (default): ``KL(a^t || a^s)``; ``"student_teacher"``:
    ``KL(a^s || a^t)``. No ``tau^2`` factor (multiply in the recipe weight if wanted). The paper
    does not publish direction or temperature: both are arguments. Logs are clipped at ``eps``.
    The teacher gets ``stop_gradient``.

    Args:
      student_attention: ``[B, T]`` attention weights over the student's frames (rows sum to 1)
        or scores/logits (``student_is_logits=True``).
      teacher_attention: ``[L, B, H, N, N]`` teacher attention weights or ``[B, N, N]`` rollout
        (token ``cls_index`` is the class token, the other ``N - 1`` are frames in time order),
        or ``[B, N']`` a frame distribution already taken from the rollout
        (``rollout_frame_distribution``, e.g. cached by a `cache` stage).
      student_is_logits: whether ``student_attention`` holds logits.
      temperature: ``tau > 0``.
      direction: ``"teacher_student"`` | ``"student_teacher"``.
      cls_index: index of the class token (default 0); None: mean over the rollout's rows (a
        model without a class token, e.g. wav2vec 2.0); unused for a ``[B, N']`` teacher.
      drop_query: False keeps row ``cls_index`` whole (``N`` entries: the first token's row of
        a model without a class token); see ``rollout_frame_distribution``.
      head_fusion, add_residual: how ``[L, B, H, N, N]`` attention is rolled out
        (``attention_rollout``; the live target, so it must equal the cached target's choice);
        unused for a rollout or a ``[B, N']`` teacher.
      eps: floor inside the logs.

    Returns:
      ``[B]``.

    Raises:
      ValueError: on shapes other than documented, mismatched batch sizes, a bad ``cls_index``
        (or ``drop_query=False`` without one), unknown ``direction``/``head_fusion`` or
        non-positive ``temperature``.

    Source: Choi, Kersner, Morton, Chang, "Temporal Knowledge Distillation for On-device Audio
    Classification", ICASSP 2022 (arXiv 2110.14131) and the authors' blog post.
    """
    check_ndim("student_attention", student_attention, 2, "[B, T]")
    if (
        teacher_attention.ndim not in (2, 3, 5)
        or teacher_attention.shape[-4 if teacher_attention.ndim == 5 else 0]
        != student_attention.shape[0]
    ):
        raise ValueError(
            "teacher_attention must be [L, B, H, N, N], [B, N, N] or [B, N'] with the student's B="
            f"{student_attention.shape[0]}, got {tuple(teacher_attention.shape)}"
        )
    if direction not in ("teacher_student", "student_teacher"):
        raise ValueError(
            f"direction must be 'teacher_student' or 'student_teacher', got {direction!r}"
        )
    if isinstance(temperature, int | float) and temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    t = student_attention.shape[1]
    a_t = _teacher_frame_distribution(
        jax.lax.stop_gradient(teacher_attention).astype(student_attention.dtype),
        t,
        cls_index=cls_index,
        drop_query=drop_query,
        head_fusion=head_fusion,
        add_residual=add_residual,
    )
    log_t = jax.nn.log_softmax(jnp.log(jnp.maximum(a_t, eps)) / temperature, axis=-1)
    if student_is_logits:
        log_s = jax.nn.log_softmax(student_attention / temperature, axis=-1)
    else:
        log_s = jax.nn.log_softmax(
            jnp.log(jnp.maximum(student_attention, eps)) / temperature, axis=-1
        )
    if direction == "teacher_student":
        return jnp.sum(jnp.exp(log_t) * (log_t - log_s), axis=-1)
    return jnp.sum(jnp.exp(log_s) * (log_s - log_t), axis=-1)
