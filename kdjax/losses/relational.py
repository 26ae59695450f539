"""Relational (similarity-structure) losses: SP, IUSP, distance correlation, cosine-Gram difference, RKD.

Batch-level losses (``similarity_preserving``, ``distance_correlation``, ``cosine_gram_difference``,
``rkd``) compare relations *between the examples of a batch*: they return a scalar and take an
optional ``mask [B]``; a masked (padded) example changes nothing, whatever its values. Under
data parallelism (``jax.jit`` over a sharded batch) they see the global batch.
``intra_utterance_sp`` compares relations between the frames of one utterance and returns ``[B]``.

Imports only jax and the Python standard library.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

from kdjax.losses._utils import check_batch_mask, check_ndim, masked_mean, safe_norm
from kdjax.losses.features import AlignMethod, align_time

Array = jax.Array

__all__ = [
    "similarity_preserving",
    "intra_utterance_sp",
    "distance_correlation",
    "cosine_gram_difference",
    "rkd",
]

RowNorm = Literal["l2", "l1"]
NormalizeWhat = Literal["gram", "features"]

_HI = jax.lax.Precision.HIGHEST


def _row_normalize(x: Array, row_norm: str, eps: float = 1e-12) -> Array:
    """Rows divided by max(||row||_p, eps), as torch ``F.normalize(x, p, dim=-1)``."""
    if row_norm == "l2":
        n = safe_norm(x, axis=-1, keepdims=True)
    elif row_norm == "l1":
        n = jnp.sum(jnp.abs(x), axis=-1, keepdims=True)
    else:
        raise ValueError(f"row_norm must be 'l2' or 'l1', got {row_norm!r}")
    return x / jnp.maximum(n, eps)


def _normalized_gram(a: Array, row_norm: str, normalize: str) -> Array:
    """``a [..., N, d]`` -> normalised Gram ``[..., N, N]``."""
    if normalize == "gram":
        g = jnp.einsum("...id,...jd->...ij", a, a, precision=_HI)
        return _row_normalize(g, row_norm)
    if normalize == "features":
        a = _row_normalize(a, row_norm)
        return jnp.einsum("...id,...jd->...ij", a, a, precision=_HI)
    raise ValueError(f"normalize must be 'gram' or 'features', got {normalize!r}")


def _as_mask(mask: Array | None, n: int, dtype) -> Array:
    return jnp.ones((n,), dtype) if mask is None else (jnp.asarray(mask) != 0).astype(dtype)


def similarity_preserving(
    student: Array,
    teacher: Array,
    *,
    mask: Array | None = None,
    row_norm: RowNorm = "l2",
    normalize: NormalizeWhat = "gram",
) -> Array:
    """Similarity-preserving KD over the examples of a batch (one layer pair).

    Formula (paper, default): ``A = reshape(activations, [B, d])``, ``G = A A^T``,
    ``G~ = G / ||G_row||_2`` (each row), ``L = ||G~_t - G~_s||_F^2 / B^2``.

    Conventions:
      * ``row_norm="l2"`` (paper Eq. 2-3, default) or ``"l1"``: torchdistill 1.1.5 ``SPKDLoss``
        calls ``normalize(G, 1)`` where the 1 is the norm order, so its rows are L1-normalised.
      * ``normalize="gram"`` (paper, default): normalise the rows of ``G``; ``"features"``:
        normalise the rows of ``A`` first and take ``G = A~ A~^T`` (cosine similarities for l2)
        without normalising ``G`` again (the order some re-implementations use).

    With ``mask [B]``: masked rows are removed (``B`` becomes the number of kept examples), so
    padding changes nothing. Both conventions are invariant to scaling either feature tensor.
    The teacher gets ``stop_gradient``.

    Args:
      student: ``[B, ...]`` activations (any trailing shape; flattened).
      teacher: ``[B, ...]`` activations (trailing sizes may differ from the student's).
      mask: optional ``[B]``, non-zero = keep.
      row_norm: ``"l2"`` | ``"l1"``.
      normalize: ``"gram"`` | ``"features"``.

    Returns:
      scalar (0 if every example is masked).

    Raises:
      ValueError: if batch sizes differ, ``mask`` is not ``[B]``, or an option is unknown.

    Source: Tung & Mori, "Similarity-Preserving Knowledge Distillation", ICCV 2019, Eq. 2-4;
    torchdistill ``SPKDLoss`` (see PAPERS.md on its L1 row norm).
    """
    if jnp.ndim(student) < 2 or jnp.ndim(teacher) < 2 or student.shape[0] != teacher.shape[0]:
        raise ValueError(
            f"student and teacher must have shape [B, ...] with the same B, got {tuple(jnp.shape(student))} "
            f"and {tuple(jnp.shape(teacher))}"
        )
    b = student.shape[0]
    check_batch_mask(mask, b)
    m = _as_mask(mask, b, student.dtype)
    a_s = jnp.where(m[:, None] > 0, student.reshape(b, -1), 0.0)
    a_t = jnp.where(
        m[:, None] > 0, jax.lax.stop_gradient(teacher).reshape(b, -1).astype(student.dtype), 0.0
    )
    d = _normalized_gram(a_t, row_norm, normalize) - _normalized_gram(a_s, row_norm, normalize)
    n = jnp.sum(m)
    return jnp.where(n > 0, jnp.sum(d * d) / jnp.maximum(n, 1.0) ** 2, 0.0)


def intra_utterance_sp(
    student: Array,
    teacher: Array,
    *,
    frame_mask: Array | None = None,
    row_norm: RowNorm = "l2",
    normalize: NormalizeWhat = "gram",
    align: AlignMethod = "interpolate",
) -> Array:
    """Intra-utterance similarity preserving (IUSP): SP over the frames of each utterance.

    Formula (natural form of the paper's description): per example ``b``, ``Q = [T, d]`` frame
    features, ``G = Q Q^T`` (``[T, T]``), rows normalised (``row_norm``/``normalize`` as in
    :func:`similarity_preserving`, paper SP default: L2 rows of ``G``),
    ``L_b = ||G~_t - G~_s||_F^2 / T^2``. The teacher's time axis (``T'``) is first aligned to the
    student's ``T`` with :func:`align_time` (``align``, default ``"interpolate"``; the paper does
    not say). ``D_s`` and ``D_t`` may differ (only ``[T, T]`` Grams are compared).

    ``frame_mask [B, T]`` (optional, student frames) drops padded frames: ``T`` becomes the number of
    kept frames. Invariant to scaling the features; equal inputs give 0. The teacher gets
    ``stop_gradient``.

    Args:
      student: ``[B, T, D_s]``.
      teacher: ``[B, T', D_t]``.
      frame_mask: optional ``[B, T]``.
      row_norm, normalize: see :func:`similarity_preserving`.
      align: ``"interpolate"`` | ``"mean"`` | ``"repeat"`` | ``"truncate"``.

    Returns:
      ``[B]`` per-utterance loss (average it with ``masked_mean`` and a batch mask).

    Raises:
      ValueError: on inputs not ``[B, T, D]``, different ``B``, a bad ``frame_mask``, unknown options.

    Source: Chang, Kao, Sun, Wang, "Intra-Utterance Similarity Preserving Knowledge Distillation
    for Audio Tagging", Interspeech 2020 (no public code; the exact normalisation is unknown).
    """
    check_ndim("student", student, 3, "[B, T, D_s]")
    check_ndim("teacher", teacher, 3, "[B, T', D_t]")
    if student.shape[0] != teacher.shape[0]:
        raise ValueError(
            f"teacher must have batch size B={student.shape[0]}, got shape {tuple(teacher.shape)}"
        )
    b, t = student.shape[:2]
    teacher = align_time(jax.lax.stop_gradient(teacher).astype(student.dtype), t, align)
    if frame_mask is None:
        fm = jnp.ones((b, t), student.dtype)
    else:
        if tuple(jnp.shape(frame_mask)) != (b, t):
            raise ValueError(
                f"frame_mask must have shape [B, T]=({b}, {t}), got {tuple(jnp.shape(frame_mask))}"
            )
        fm = (jnp.asarray(frame_mask) != 0).astype(student.dtype)
    keep = fm[..., None] > 0
    q_s = jnp.where(keep, student, 0.0)
    q_t = jnp.where(keep, teacher, 0.0)
    d = _normalized_gram(q_t, row_norm, normalize) - _normalized_gram(q_s, row_norm, normalize)
    n = jnp.sum(fm, axis=-1)
    return jnp.where(n > 0, jnp.sum(d * d, axis=(-2, -1)) / jnp.maximum(n, 1.0) ** 2, 0.0)


def _align_pair(student: Array, teacher: Array, align: AlignMethod) -> tuple[Array, Array]:
    """Both to ``[B, T, D]`` with the student's ``T`` (2-D ``[B, D]`` inputs pass through as T = 1)."""
    if student.ndim == 2 and teacher.ndim == 2:
        return student[:, None, :], teacher[:, None, :]
    check_ndim("student", student, 3, "[B, T, D_s] (or [B, D_s] with a [B, D_t] teacher)")
    check_ndim("teacher", teacher, 3, "[B, T', D_t] (or [B, D_t] with a [B, D_s] student)")
    return student, align_time(teacher, student.shape[1], align)


def _check_batch(student: Array, teacher: Array, mask: Array | None) -> None:
    if student.shape[0] != teacher.shape[0]:
        raise ValueError(
            f"student and teacher must have the same batch size, got {tuple(student.shape)} and {tuple(teacher.shape)}"
        )
    check_batch_mask(mask, student.shape[0])


def _pairwise_distance(x: Array, dist_eps: float) -> Array:
    """``x [..., N, D]`` -> ``[..., N, N]``: ``sqrt(sum (x_i - x_j)^2 + dist_eps)`` (EAsT code)."""
    diff = x[..., None, :, :] - x[..., :, None, :]
    return jnp.sqrt(jnp.sum(diff * diff, axis=-1) + dist_eps)


def distance_correlation(
    student: Array,
    teacher: Array,
    *,
    mask: Array | None = None,
    align: AlignMethod = "repeat",
    eps: float = 1e-9,
    dist_eps: float = 1e-12,
) -> Array:
    """EAsT feature loss: 1 - distance correlation between student and teacher embeddings, per time step.

    Formula: align the teacher's frames to the student's ``T`` (``align``); for each time step
    ``t``, over the batch: ``a_ij = ||x_i - x_j||`` (student), ``b_ij = ||y_i - y_j||`` (teacher)
    (computed as ``sqrt(sum sq + dist_eps)`` as in the EAsT code, so gradients are finite at
    ``i = j``), double-centred ``A = a - mean_row - mean_col + mean_all`` (and ``B``),
    ``dCor_t = mean(A B) / sqrt(mean(A A) mean(B B) + eps)``, ``L = mean_t (1 - dCor_t)``.
    (With means, ``mean(A B)`` is the squared distance covariance ``dCov^2``, so this is the
    squared distance correlation of Székely et al., as in the EAsT code.) ``L`` is exactly
    invariant to translations and rotations (orthogonal maps) of either embedding, and
    approximately scale invariant: ``eps`` and ``dist_eps`` are absolute, so scaling an
    embedding by ``c`` changes ``L`` unless ``mean(A A) mean(B B) >> eps`` and the pairwise
    squared distances ``>> dist_eps`` (relative error about ``eps / (2 mean(A A) mean(B B))``).
    It is exact only as ``eps, dist_eps -> 0``: with the defaults, O(1) features behave as
    scale invariant, while tiny ones (pairwise distances ~1e-4) push ``dCor`` towards 0 and
    ``L`` towards 1. Likewise ``L`` is 0 (up to the eps terms) when the student is a
    rotated/scaled/translated copy of the teacher. With ``mask [B]``, all means are over
    kept examples only.
    The teacher gets ``stop_gradient``.

    Args:
      student: ``[B, T, D_s]`` (EAsT: last-stage features, mean over frequency) or ``[B, D_s]``.
      teacher: ``[B, T', D_t]`` (embedding sequence) or ``[B, D_t]``. For EAsT's
        ``expand=-1`` (time mean) pass ``x.mean(1)`` for both.
      mask: optional ``[B]``.
      align: default ``"repeat"`` (EAsT: integer repetition, then truncation); also
        ``"interpolate"``, ``"mean"``, ``"truncate"``.
      eps: the ``1e-9`` of the EAsT code; dist_eps: the ``1e-12`` under the square root.

    Returns:
      scalar.

    Raises:
      ValueError: on mismatched batch sizes, ranks other than documented, or a bad mask.

    Source: Ding & Lerch, "Audio Embeddings as Teachers for Music Classification", ISMIR 2023;
    code suncerock/EAsT-music-classification ``compute_distance_correlation``; Székely, Rizzo,
    Bakirov, Ann. Statist. 2007.
    """
    _check_batch(student, teacher, mask)
    x, y = _align_pair(student, jax.lax.stop_gradient(teacher).astype(student.dtype), align)
    b = x.shape[0]
    m = _as_mask(mask, b, x.dtype)
    # Zero masked examples first, so garbage (even NaN) there reaches neither value nor gradient.
    x = jnp.swapaxes(jnp.where(m[:, None, None] > 0, x, 0.0), 0, 1)  # [T, B, D]
    y = jnp.swapaxes(jnp.where(m[:, None, None] > 0, y, 0.0), 0, 1)
    pair = m[:, None] * m[None, :]  # [B, B]
    n = jnp.sum(m)
    n_safe = jnp.maximum(n, 1.0)

    def centred(d: Array) -> Array:  # d [T, B, B]
        d = jnp.where(pair > 0, d, 0.0)
        row = jnp.sum(d, axis=-1, keepdims=True) / n_safe
        col = jnp.sum(d, axis=-2, keepdims=True) / n_safe
        allm = jnp.sum(d, axis=(-2, -1), keepdims=True) / n_safe**2
        return jnp.where(pair > 0, d - row - col + allm, 0.0)

    a = centred(_pairwise_distance(x, dist_eps))
    bb = centred(_pairwise_distance(y, dist_eps))
    mean2 = lambda u: jnp.sum(u, axis=(-2, -1)) / n_safe**2  # noqa: E731
    dcor = mean2(a * bb) / jnp.sqrt(mean2(a * a) * mean2(bb * bb) + eps)
    return jnp.where(n > 0, jnp.mean(1.0 - dcor), 0.0)


def cosine_gram_difference(
    student: Array,
    teacher: Array,
    *,
    mask: Array | None = None,
    align: AlignMethod = "repeat",
) -> Array:
    """EAsT's "cosine distance difference": mean absolute difference of batch cosine-similarity matrices.

    Formula: ``x~ = x / ||x||_2`` per example and time step; per time step
    ``G_t = X~ X~^T`` over the batch (``[B, B]``); ``L = mean_{t,i,j} |G^t_s - G^t_t|``.
    With ``mask [B]`` the mean is over kept pairs. The teacher's time axis is aligned to the
    student's (``align``, default ``"repeat"`` as in EAsT). The teacher gets ``stop_gradient``.

    Args:
      student: ``[B, T, D_s]`` or ``[B, D_s]``.
      teacher: ``[B, T', D_t]`` or ``[B, D_t]``.
      mask: optional ``[B]``.
      align: see :func:`align_time`.

    Returns:
      scalar.

    Raises:
      ValueError: as :func:`distance_correlation`.

    Source: EAsT code ``compute_cosine_distance_difference`` (suncerock/EAsT-music-classification).
    """
    _check_batch(student, teacher, mask)
    x, y = _align_pair(student, jax.lax.stop_gradient(teacher).astype(student.dtype), align)
    m = _as_mask(mask, x.shape[0], x.dtype)
    x = jnp.where(m[:, None, None] > 0, x, 0.0)
    y = jnp.where(m[:, None, None] > 0, y, 0.0)
    g = lambda u: _normalized_gram(jnp.swapaxes(u, 0, 1), "l2", "features")  # noqa: E731
    pair = jnp.broadcast_to(m[:, None] * m[None, :], (x.shape[1],) + (x.shape[0],) * 2)
    return masked_mean(jnp.abs(g(x) - g(y)), pair)


def _smooth_l1(d: Array) -> Array:
    ad = jnp.abs(d)
    return jnp.where(ad < 1.0, 0.5 * d * d, ad - 0.5)


def rkd(
    student: Array,
    teacher: Array,
    *,
    mask: Array | None = None,
    distance_weight: float = 1.0,
    angle_weight: float = 2.0,
) -> Array:
    """Relational KD (Park et al. 2019): distance-wise and angle-wise potentials, Huber loss.

    Formula: ``psi_D(i, j) = ||x_i - x_j||_2 / mu`` with ``mu`` the mean distance over pairs
    ``i != j``; ``psi_A(i, j, k) = <e_ji, e_ki>`` with ``e_ji = (x_j - x_i) / ||x_j - x_i||``
    (0 for ``j = i``); ``L = w_D mean_{ij} huber(psi_D^s - psi_D^t) + w_A mean_{ijk}
    huber(psi_A^s - psi_A^t)``, Huber = smooth-L1 with ``delta = 1``, means over all kept
    pairs/triples (the diagonal included, as in the official code and torchdistill ``RKDLoss``).
    Defaults ``w_D = 1, w_A = 2`` are the official code's ``--dist_ratio 1 --angle_ratio 2``
    (torchdistill's configs use 25 and 50). The teacher gets ``stop_gradient``.

    Args:
      student: ``[B, D_s]`` embeddings (trailing axes are flattened).
      teacher: ``[B, D_t]``.
      mask: optional ``[B]``.
      distance_weight, angle_weight: ``w_D``, ``w_A``.

    Returns:
      scalar.

    Raises:
      ValueError: on mismatched batch sizes or a bad mask.

    Source: Park, Kim, Lu, Cho, "Relational Knowledge Distillation", CVPR 2019, Eq. 3-7;
    code lenscloth/RKD; torchdistill ``RKDLoss``.
    """
    if jnp.ndim(student) < 2 or jnp.ndim(teacher) < 2:
        raise ValueError(
            f"student and teacher must be [B, D], got {tuple(jnp.shape(student))}, {tuple(jnp.shape(teacher))}"
        )
    _check_batch(student, teacher, mask)
    b = student.shape[0]
    m = _as_mask(mask, b, student.dtype)
    xs = jnp.where(m[:, None] > 0, student.reshape(b, -1), 0.0)
    xt = jnp.where(
        m[:, None] > 0, jax.lax.stop_gradient(teacher).reshape(b, -1).astype(student.dtype), 0.0
    )
    pair = m[:, None] * m[None, :]
    off = pair * (1.0 - jnp.eye(b, dtype=student.dtype))

    def dist(x: Array) -> Array:
        d = safe_norm(x[None, :, :] - x[:, None, :], axis=-1)
        mu = jnp.sum(d * off) / jnp.maximum(jnp.sum(off), 1.0)
        return d / jnp.maximum(mu, 1e-12)

    def angle(x: Array) -> Array:
        e = x[None, :, :] - x[:, None, :]  # e[i, j] = x_j - x_i
        e = e / jnp.maximum(safe_norm(e, axis=-1, keepdims=True), 1e-12)
        return jnp.einsum("ijd,ikd->ijk", e, e, precision=_HI)

    l_d = masked_mean(_smooth_l1(dist(xs) - dist(xt)), pair)
    triple = m[:, None, None] * m[None, :, None] * m[None, None, :]
    l_a = masked_mean(_smooth_l1(angle(xs) - angle(xt)), triple)
    return distance_weight * l_d + angle_weight * l_a
