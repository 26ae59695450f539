"""Evaluation metrics on host NumPy arrays (collected over a whole split).

Inputs are scores `[N, C]` (logits or probabilities), labels `[N, C]`
(probabilities / multi-hot) and an optional example mask `[N]`.
"""

from __future__ import annotations

import numpy as np


def _select(x: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    return x if mask is None else x[np.asarray(mask) > 0]


def accuracy(scores: np.ndarray, labels: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Top-1 accuracy: argmax of scores `[N, C]` vs argmax of labels `[N, C]` over unmasked rows.

    Raises:
      ValueError: shapes differ or no unmasked example.
    """
    scores, labels = np.asarray(scores), np.asarray(labels)
    if scores.shape != labels.shape:
        raise ValueError(f"accuracy: scores {scores.shape} and labels {labels.shape} differ")
    s, y = _select(scores, mask), _select(labels, mask)
    if len(s) == 0:
        raise ValueError("accuracy: no unmasked example")
    return float(np.mean(s.argmax(-1) == y.argmax(-1)))


def confusion_matrix(
    scores: np.ndarray, labels: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """Counts `[C, C]`: row = true class (argmax of labels), column = predicted class."""
    s, y = _select(np.asarray(scores), mask), _select(np.asarray(labels), mask)
    c = labels.shape[-1]
    cm = np.zeros((c, c), np.int64)
    np.add.at(cm, (y.argmax(-1), s.argmax(-1)), 1)
    return cm


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Recall per true class `[C]` from a confusion matrix; NaN for a class with no example."""
    cm = np.asarray(cm, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(cm) / cm.sum(1)
