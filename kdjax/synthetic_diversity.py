"""Diversity of a synthetic set: mean pairwise distances between feature vectors (NumPy).

Model inversion tends to produce near-duplicate samples per class; FRAMI's contrastive loss
(as CMI's, Fang et al. IJCAI 2021) is meant to spread them apart. These measures compare sets
(e.g. DeepInversion vs FRAMI) in a fixed feature space, e.g. the teacher's pooled embedding
of each inverted spectrogram: the larger, the more diverse. Offline analysis only (float64
NumPy, not traced by JAX).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _check(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, np.float64)
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"expected features [N, D] with N >= 2, got shape {z.shape}")
    return z


def mean_pairwise_cosine_distance(z: np.ndarray) -> float:
    """Mean of ``1 - cos(z_i, z_j)`` over all unordered pairs ``i < j``.

    Args:
      z: ``[N, D]`` features, N >= 2 (zero rows count as cosine 0 with everything).

    Returns:
      a float in ``[0, 2]``.

    Raises:
      ValueError: ``z`` is not ``[N, D]`` with N >= 2.
    """
    z = _check(z)
    u = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    cos = u @ u.T
    iu = np.triu_indices(len(z), k=1)
    return float(np.mean(1.0 - cos[iu]))


def mean_pairwise_distance(z: np.ndarray) -> float:
    """Mean Euclidean distance ``||z_i - z_j||_2`` over all unordered pairs ``i < j``.

    Args:
      z: ``[N, D]`` features, N >= 2 (in the features' units).

    Returns:
      a float >= 0.

    Raises:
      ValueError: ``z`` is not ``[N, D]`` with N >= 2.
    """
    z = _check(z)
    sq = np.sum(z * z, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (z @ z.T), 0.0)
    iu = np.triu_indices(len(z), k=1)
    return float(np.mean(np.sqrt(d2[iu])))


def within_class(fn: Callable[[np.ndarray], float], z: np.ndarray, labels: np.ndarray) -> float:
    """Mean over classes (with >= 2 samples) of ``fn`` of that class's rows: intra-class diversity.

    Args:
      fn: e.g. ``mean_pairwise_cosine_distance``.
      z: ``[N, D]`` features.
      labels: ``[N]`` integer class ids, or ``[N, C]`` one-hot/probabilities (argmax is taken).

    Returns:
      a float (the unweighted mean over classes).

    Raises:
      ValueError: mismatched lengths, or no class has two samples.
    """
    z = np.asarray(z)
    y = np.asarray(labels)
    if y.ndim == 2:
        y = np.argmax(y, axis=-1)
    if len(y) != len(z):
        raise ValueError(f"labels ({len(y)}) and features ({len(z)}) differ in length")
    vals = [fn(z[y == k]) for k in np.unique(y) if np.sum(y == k) >= 2]
    if not vals:
        raise ValueError("within_class: no class has two samples")
    return float(np.mean(vals))
