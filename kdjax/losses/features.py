"""Feature losses: FitNets hints, attention transfer, hidden states around statistics pooling;
and ``align_time``, the helper that brings teacher/student frame sequences to a common length.

Imports only jax and the Python standard library.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp

from kdjax.losses._utils import check_ndim, masked_mean, safe_norm

Array = jax.Array

__all__ = [
    "align_time",
    "time_alignment_matrix",
    "hint_l2",
    "attention_transfer",
    "stats_pool",
    "stats_pooling_hidden_loss",
]

AlignMethod = Literal["repeat", "interpolate", "mean", "truncate"]


_ALIGN_METHODS = ("repeat", "interpolate", "mean", "truncate")


def _check_method(method: str) -> None:
    if method not in _ALIGN_METHODS:
        raise ValueError(
            f"method must be 'repeat', 'interpolate', 'mean' or 'truncate', got {method!r}"
        )


def time_alignment_matrix(
    t_in: int,
    t_out: int,
    method: AlignMethod = "interpolate",
    *,
    dtype: jnp.dtype | None = None,
) -> Array:
    """The ``[T_out, T_in]`` matrix ``W`` with ``align_time(x)[b] = W @ x[b]`` (built from static shapes).

    See :func:`align_time` for the methods. ``dtype``: the matrix's dtype; default JAX's
    default float (float64 under ``jax_enable_x64``, else float32). The weights are computed
    in Python floats (double precision) and rounded once to ``dtype``.

    Raises ``ValueError`` for an unknown method, a non-positive length, or ``"truncate"``
    with ``T_out > T_in``.
    """
    _check_method(method)
    if t_in < 1 or t_out < 1:
        raise ValueError(f"frame counts must be >= 1, got T_in={t_in}, T_out={t_out}")
    if dtype is None:
        dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
    rows: list[list[float]] = [[0.0] * t_in for _ in range(t_out)]
    if method == "repeat":
        k = max(1, math.ceil(t_out / t_in))  # EAsT: repeat_interleave(k), then truncate
        for i in range(t_out):
            rows[i][i // k] = 1.0
    elif method == "truncate":
        if t_out > t_in:
            raise ValueError(f"method='truncate' needs T_out <= T, got T={t_in}, T_out={t_out}")
        for i in range(t_out):
            rows[i][i] = 1.0
    elif method == "interpolate":
        # Linear, half-pixel centres (torch F.interpolate(mode="linear", align_corners=False)).
        scale = t_in / t_out
        for i in range(t_out):
            src = max((i + 0.5) * scale - 0.5, 0.0)
            lo = min(int(math.floor(src)), t_in - 1)
            hi = min(lo + 1, t_in - 1)
            frac = src - lo
            rows[i][lo] += 1.0 - frac
            rows[i][hi] += frac
    else:  # "mean"
        # Adaptive average pooling (torch adaptive_avg_pool1d windows); upsampling repeats.
        for i in range(t_out):
            start = (i * t_in) // t_out
            end = -((-(i + 1) * t_in) // t_out)
            for j in range(start, end):
                rows[i][j] = 1.0 / (end - start)
    return jnp.asarray(rows, dtype=dtype)


def align_time(x: Array, t_out: int, method: AlignMethod = "interpolate") -> Array:
    """Resamples a frame sequence ``x [B, T, D]`` to ``[B, T_out, D]``.

    Methods (each is a fixed linear map over time, so the result is differentiable and jits):

    * ``"repeat"``: each frame repeated ``k = ceil(T_out / T)`` times, then truncated to
      ``T_out`` (EAsT code: ``repeat_interleave`` then cut to the shorter length). For
      ``T >= T_out`` this is truncation.
    * ``"interpolate"`` (default): linear interpolation with half-pixel centres, like
      ``torch.nn.functional.interpolate(mode="linear", align_corners=False)`` (Temporal KD
      "linearly interpolate"; the paper does not say which corner convention).
    * ``"mean"``: adaptive average pooling (window ``[floor(iT/T_out), ceil((i+1)T/T_out))``, as
      ``torch.nn.functional.adaptive_avg_pool1d``); ``T_out = 1`` is the time mean.
    * ``"truncate"``: the first ``T_out`` frames (needs ``T_out <= T``).

    Args:
      x: ``[B, T, D]``.
      t_out: target frame count (a Python int).
      method: see above.

    Returns:
      ``[B, T_out, D]`` in ``x``'s dtype (identity when ``T == T_out``, for every method); the
      weights are built in ``x``'s (floating) dtype, so float64 inputs get float64 weights.

    Raises:
      ValueError: if ``x`` is not ``[B, T, D]``, ``t_out < 1``, the method is unknown (also
        when ``T == T_out``), or ``"truncate"`` is asked to lengthen.

    Source: EAsT code (``expand_feature_time``: repeat, truncate, time mean); Temporal KD
    (linear interpolation of the teacher's attention to the student's length).
    """
    check_ndim("x", x, 3, "[B, T, D]")
    _check_method(method)
    t_in = x.shape[1]
    if int(t_out) < 1:
        raise ValueError(f"frame counts must be >= 1, got T_in={t_in}, T_out={t_out}")
    if t_in == t_out:
        return x
    dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else None
    w = time_alignment_matrix(t_in, int(t_out), method, dtype=dtype)
    return jnp.einsum("ot,btd->bod", w, x, precision=jax.lax.Precision.HIGHEST)


def hint_l2(
    student: Array,
    teacher: Array,
    *,
    reduction: Literal["mean", "sum", "half_sum"] = "mean",
) -> Array:
    """FitNets hint loss between the (regressed) student guided layer and the teacher hint layer.

    Formula: ``d_b = u_b - r(v_b)`` flattened; ``"mean"`` (default, torchdistill ``FitNetsLoss``
    = ``MSELoss``): ``mean_j d_bj^2``; ``"sum"``: ``sum_j d_bj^2``; ``"half_sum"`` (paper Eq. 3):
    ``1/2 sum_j d_bj^2``. The regressor ``r`` lives in the student model: pass its output as
    ``student``. The teacher gets ``stop_gradient``.

    Args:
      student: ``[B, ...]`` regressed student features.
      teacher: ``[B, ...]`` teacher hint, same shape.
      reduction: ``"mean"`` | ``"sum"`` | ``"half_sum"``.

    Returns:
      ``[B]``.

    Raises:
      ValueError: on different shapes, ``ndim < 2``, or an unknown reduction.

    Source: Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015, Eq. 3.
    """
    if jnp.ndim(student) < 2:
        raise ValueError(f"student must have shape [B, ...], got {tuple(jnp.shape(student))}")
    if tuple(student.shape) != tuple(teacher.shape):
        raise ValueError(
            f"teacher must have the student's shape {tuple(student.shape)} (apply the regressor in the "
            f"student), got {tuple(teacher.shape)}"
        )
    d = (student - jax.lax.stop_gradient(teacher)).reshape(student.shape[0], -1)
    sq = d * d
    if reduction == "mean":
        return jnp.mean(sq, axis=-1)
    if reduction == "sum":
        return jnp.sum(sq, axis=-1)
    if reduction == "half_sum":
        return 0.5 * jnp.sum(sq, axis=-1)
    raise ValueError(f"reduction must be 'mean', 'sum' or 'half_sum', got {reduction!r}")


def _attention_map(a: Array, p: float, channel_reduce: str) -> Array:
    q = jnp.abs(a) ** p
    q = jnp.mean(q, axis=-1) if channel_reduce == "mean" else jnp.sum(q, axis=-1)
    q = q.reshape(q.shape[0], -1)
    return q / jnp.maximum(safe_norm(q, axis=-1, keepdims=True), 1e-12)


def attention_transfer(
    student: Array,
    teacher: Array,
    *,
    p: float = 2.0,
    convention: Literal["code", "paper"] = "code",
) -> Array:
    """Activation-based attention transfer between feature maps of equal spatial (time-frequency) size.

    Attention map (channels last): ``Q = vec(sum_c |A_c|^p)`` (``mean_c`` in the code: the same after
    normalisation), then ``q = Q / ||Q||_2``.

    * ``convention="code"`` (default; szagoruyko/attention-transfer ``at_loss``, torchdistill
      ``ATLoss`` default): ``L_b = mean_j (q_s - q_t)_j^2``; the batch mean of this equals the
      reference's ``(at(x) - at(y)).pow(2).mean()``.
    * ``convention="paper"`` (Eq. 2): ``L_b = || q_s - q_t ||_2`` (a norm, not squared; the
      ``beta/2`` weight is the recipe's).

    Args:
      student: ``[B, ..., C_s]`` (e.g. ``[B, T, F, C]`` or ``[B, T, D]``), channels last.
      teacher: ``[B, ..., C_t]`` with the same batch and spatial shape (channels may differ).
      p: exponent of the attention map (paper: 2).
      convention: ``"code"`` or ``"paper"``.

    Returns:
      ``[B]``.

    Raises:
      ValueError: if shapes differ except in the channel axis, ``ndim < 3``, or the convention is unknown.

    Source: Zagoruyko & Komodakis, "Paying More Attention to Attention", ICLR 2017, Eq. 2; code
    github.com/szagoruyko/attention-transfer.
    """
    if jnp.ndim(student) < 3 or jnp.ndim(student) != jnp.ndim(teacher):
        raise ValueError(
            f"student and teacher must have shape [B, ..., C] with the same rank >= 3, got "
            f"{tuple(jnp.shape(student))} and {tuple(jnp.shape(teacher))}"
        )
    if tuple(student.shape[:-1]) != tuple(teacher.shape[:-1]):
        raise ValueError(
            f"teacher must have the student's batch and spatial shape {tuple(student.shape[:-1])} + [C_t], "
            f"got {tuple(teacher.shape)}"
        )
    if convention not in ("code", "paper"):
        raise ValueError(f"convention must be 'code' or 'paper', got {convention!r}")
    q_s = _attention_map(student, p, "mean")
    q_t = _attention_map(jax.lax.stop_gradient(teacher), p, "mean")
    d = q_s - q_t
    if convention == "code":
        return jnp.mean(d * d, axis=-1)
    return safe_norm(d, axis=-1)


def stats_pool(frames: Array, *, mask: Array | None = None, eps: float = 1e-5) -> Array:
    """Statistics pooling: ``[mean_t x, sqrt(var_t x + eps)]`` over frames, ``[B, T, D] -> [B, 2D]``.

    ``mask [B, T]`` (optional) excludes padded frames. Variance is the biased (1/T) one. Raises
    ``ValueError`` on bad shapes. Source: x-vector statistics pooling (Snyder et al. 2018).
    """
    check_ndim("frames", frames, 3, "[B, T, D]")
    if mask is not None and tuple(jnp.shape(mask)) != tuple(frames.shape[:2]):
        raise ValueError(
            f"mask must have shape [B, T]={tuple(frames.shape[:2])}, got {tuple(jnp.shape(mask))}"
        )
    mu = masked_mean(frames, mask, axis=1)
    var = masked_mean((frames - mu[:, None, :]) ** 2, mask, axis=1)
    return jnp.concatenate([mu, jnp.sqrt(var + eps)], axis=-1)


def _project(x: Array, projection: Array | Callable[[Array], Array] | None) -> Array:
    if projection is None:
        return x
    if callable(projection):
        return projection(x)
    w = jnp.asarray(projection)
    if w.ndim != 2 or w.shape[0] != x.shape[-1]:
        raise ValueError(
            f"projection must be a matrix [D_s, D_t] with D_s={x.shape[-1]}, got {tuple(w.shape)}"
        )
    return x @ w


def _hidden_distance(s: Array, t: Array, metric: str, mask: Array | None = None) -> Array:
    """Per example: MSE over all entries, or mean over rows of (1 - cosine).

    ``s, t``: ``[B, D]`` or ``[B, T, D]``; ``mask [B, T]`` (frames only) restricts the mean
    to kept rows (equal weight per kept frame; every frame has the same ``D`` entries).
    """
    if metric == "mse":
        if mask is None:
            d = (s - t).reshape(s.shape[0], -1)
            return jnp.mean(d * d, axis=-1)
        per_row = jnp.mean((s - t) ** 2, axis=-1)
    elif metric == "cosine":
        num = jnp.sum(s * t, axis=-1)
        den = jnp.maximum(safe_norm(s, axis=-1) * safe_norm(t, axis=-1), 1e-8)
        per_row = 1.0 - num / den
        if mask is None:
            return per_row.reshape(s.shape[0], -1).mean(-1)
    else:
        raise ValueError(f"metric must be 'mse' or 'cosine', got {metric!r}")
    return masked_mean(per_row, mask, axis=1)


def stats_pooling_hidden_loss(
    student_frames: Array,
    teacher_frames: Array,
    *,
    student_stats: Array | None = None,
    teacher_stats: Array | None = None,
    metric: Literal["mse", "cosine"] = "mse",
    projection: Array | Callable[[Array], Array] | None = None,
    stats_projection: Array | Callable[[Array], Array] | None = None,
    frames_weight: float = 1.0,
    stats_weight: float = 1.0,
    align: AlignMethod = "interpolate",
    mask: Array | None = None,
) -> Array:
    """FRAMI stage 2: match the teacher's hidden states before and after statistics pooling.

    Formula: ``L_b = w_f * d(P(S_b), T_b) + w_s * d(s_b, t_b)`` with ``S, T`` the student/teacher
    frames (the teacher's time axis aligned to the student's with ``align_time``), ``P`` the
    optional student-side projection (a ``[D_s, D_t]`` matrix or a callable, e.g. a bound Flax
    module; its parameters then get gradients), ``s, t`` the pooled statistics, and ``d`` either
    ``"mse"`` (mean of squared differences, default) or ``"cosine"`` (mean over rows of
    ``1 - cos``). Stats default to ``stats_pool`` of the (projected) frames; pass
    ``student_stats``/``teacher_stats`` to use the models' own (then ``stats_projection``, a
    ``[2D_s, 2D_t]`` matrix or callable, maps the student's if the widths differ). The teacher
    gets ``stop_gradient``.

    Frame mask: with ``mask [B, T]`` (1 = real frame, 0 = padding, on the student's time
    axis), the frames term averages over kept frames only and the pooled statistics are
    ``stats_pool(..., mask=mask)``; masked frames (of the student, and of the teacher after
    alignment) are zeroed before anything else, so whatever they hold (even NaN/inf) changes
    neither value nor gradient: a padded batch gives each example the loss of its unpadded
    sequence. Alignment mixes neighbouring teacher frames, so when the teacher's ``T'``
    differs from ``T`` its padding should be removed or its frames aligned (and masked) first;
    with ``T' == T`` (same hop) the mask covers both exactly. Given
    ``student_stats``/``teacher_stats`` are used as they are (pool them with the mask).

    Args:
      student_frames: ``[B, T, D_s]``.
      teacher_frames: ``[B, T', D_t]``.
      student_stats: optional ``[B, 2D_s]``; teacher_stats: optional ``[B, 2D_t]``.
      metric: ``"mse"`` (default) or ``"cosine"``.
      projection, stats_projection: see above (``None``: identity, then widths must agree).
      frames_weight, stats_weight: weights of the two terms (FRAMI's are unpublished: default 1, 1).
      align: time alignment method of the teacher frames (default ``"interpolate"``).
      mask: optional ``[B, T]`` frame mask (see above).

    Returns:
      ``[B]``.

    Raises:
      ValueError: on ranks other than documented, a mask that is not ``[B, T]``, an unknown
        ``align`` method, or feature widths that differ after projection.

    Source: Kang et al., FRAMI, ICASSP 2023 (hidden states around statistics pooling reused in
    distillation; the loss form is not published, so metric and projection are arguments).
    """
    check_ndim("student_frames", student_frames, 3, "[B, T, D_s]")
    check_ndim("teacher_frames", teacher_frames, 3, "[B, T', D_t]")
    _check_method(align)
    keep = None
    if mask is not None:
        if tuple(jnp.shape(mask)) != tuple(student_frames.shape[:2]):
            raise ValueError(
                f"mask must have shape [B, T]={tuple(student_frames.shape[:2])} (the student's "
                f"frames), got {tuple(jnp.shape(mask))}"
            )
        keep = (jnp.asarray(mask) != 0)[:, :, None]
        # Zero padding first: garbage (even NaN) would otherwise reach the projection's gradient.
        student_frames = jnp.where(keep, student_frames, 0)
    teacher_frames = jax.lax.stop_gradient(teacher_frames)
    if keep is not None and teacher_frames.shape[1] == student_frames.shape[1]:
        teacher_frames = jnp.where(keep, teacher_frames, 0)
    s_frames = _project(student_frames, projection)
    t_frames = align_time(teacher_frames, s_frames.shape[1], align)
    if keep is not None:
        t_frames = jnp.where(keep, t_frames, 0)
    if s_frames.shape != t_frames.shape:
        raise ValueError(
            f"projected student_frames {tuple(s_frames.shape)} and teacher_frames {tuple(t_frames.shape)} "
            "must have equal widths [B, T, D_t]: pass projection=[D_s, D_t]"
        )
    s_stats = (
        stats_pool(s_frames, mask=mask)
        if student_stats is None
        else _project(student_stats, stats_projection)
    )
    t_stats = (
        stats_pool(t_frames, mask=mask)
        if teacher_stats is None
        else jax.lax.stop_gradient(teacher_stats)
    )
    if s_stats.shape != t_stats.shape:
        raise ValueError(
            f"student stats {tuple(s_stats.shape)} and teacher stats {tuple(t_stats.shape)} must both be "
            "[B, 2D_t]: pass stats_projection"
        )
    return frames_weight * _hidden_distance(
        s_frames, t_frames, metric, mask
    ) + stats_weight * _hidden_distance(s_stats, t_stats, metric)
