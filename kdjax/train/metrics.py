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


# ---------------------------------------------------------------------------
# Multi-label (tagging) metrics.
#
# Shared conventions: scores `[N, C]` (any monotone score: logits or
# probabilities), labels `[N, C]` probabilities, a (clip, class) entry is
# positive when `labels > 0.5` (multi-hot 1/0; OpenMIC-style soft labels are
# binarised at 0.5, their ==0.5 entries are masked by the dataset). Two masks:
# `mask [N]` drops whole examples (eval padding), `label_mask [N, C]` drops
# single (clip, class) entries (unknown labels); both are "1 = keep".
# ---------------------------------------------------------------------------


def _prepare(
    scores: np.ndarray,
    labels: np.ndarray,
    mask: np.ndarray | None,
    label_mask: np.ndarray | None,
    name: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validates shapes; returns float64 scores, bool positives, bool keep, all `[N, C]`."""
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels, np.float64)
    if scores.ndim != 2 or scores.shape != labels.shape:
        raise ValueError(f"{name}: scores {scores.shape} and labels {labels.shape} must be equal [N, C]")
    keep = np.ones(scores.shape, bool)
    if label_mask is not None:
        label_mask = np.asarray(label_mask)
        if label_mask.shape != scores.shape:
            raise ValueError(f"{name}: label_mask {label_mask.shape} != scores {scores.shape}")
        keep &= label_mask > 0
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != scores.shape[:1]:
            raise ValueError(f"{name}: mask {mask.shape} must be [N] = ({scores.shape[0]},)")
        keep &= (mask > 0)[:, None]
    if not np.all(np.isfinite(scores[keep])):
        raise ValueError(f"{name}: scores contain NaN/inf")
    return scores, labels > 0.5, keep


def _mean_over_classes(per_class: np.ndarray, error: str) -> float:
    """The mean of the per-class values `[C]` that are not NaN (classes where the metric is defined).

    Raises:
      ValueError: `error`, when every value is NaN.
    """
    if np.all(np.isnan(per_class)):
        raise ValueError(error)
    return float(np.nanmean(per_class))


def _binary_ap(s: np.ndarray, y: np.ndarray) -> float:
    """Average precision of one binary problem, sklearn's step-wise (non-interpolated) definition.

    AP = sum_n (R_n - R_{n-1}) P_n over the distinct score thresholds (tied
    scores form one threshold, as in `sklearn.metrics.average_precision_score`).
    """
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    # the last index of each run of equal scores is one threshold
    ends = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp, fp = tp[ends], fp[ends]
    precision = tp / (tp + fp)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def average_precision_per_class(scores: np.ndarray, labels: np.ndarray, *,
                                mask: np.ndarray | None = None,
                                label_mask: np.ndarray | None = None) -> np.ndarray:
    """Average precision of every class `[C]`; NaN for a class with no (unmasked) positive.

    Equal to `sklearn.metrics.average_precision_score(labels[:, c] > 0.5, scores[:, c])`
    on the unmasked entries of column c (tests check this, ties included).

    Args:
      scores: `[N, C]` scores (higher = more likely present).
      labels: `[N, C]` probabilities; positive where > 0.5.
      mask: optional `[N]` example mask (1 = keep).
      label_mask: optional `[N, C]` entry mask (1 = keep).

    Returns:
      float64 `[C]`.

    Raises:
      ValueError: shape mismatch or non-finite scores.
    """
    s, y, keep = _prepare(scores, labels, mask, label_mask, "average_precision_per_class")
    out = np.full(s.shape[1], np.nan)
    for c in range(s.shape[1]):
        k = keep[:, c]
        if y[k, c].any():
            out[c] = _binary_ap(s[k, c], y[k, c])
    return out


def mean_average_precision(scores: np.ndarray, labels: np.ndarray, *,
                           mask: np.ndarray | None = None,
                           label_mask: np.ndarray | None = None) -> float:
    """mAP: macro average of per-class AP over classes with at least one positive.

    Classes without a positive are skipped (AP undefined); `skipped_classes`
    or `tagging_metrics` reports them. Source: the AudioSet/PANNs convention
    (`sklearn.metrics.average_precision_score(average=None)`, then the mean).

    Args and errors as `average_precision_per_class`; also ValueError when no
    class has a positive.
    """
    ap = average_precision_per_class(scores, labels, mask=mask, label_mask=label_mask)
    return _mean_over_classes(ap, "mean_average_precision: no class has a positive example")


def roc_auc_per_class(scores: np.ndarray, labels: np.ndarray, *, mask: np.ndarray | None = None,
                      label_mask: np.ndarray | None = None) -> np.ndarray:
    """ROC-AUC of every class `[C]`; NaN where a class lacks positives or negatives.

    Computed as the Mann-Whitney U statistic with tied scores counted 1/2, which
    equals `sklearn.metrics.roc_auc_score` per column (tests check this).

    Args/Raises: as `average_precision_per_class`.
    """
    from scipy.stats import rankdata

    s, y, keep = _prepare(scores, labels, mask, label_mask, "roc_auc_per_class")
    out = np.full(s.shape[1], np.nan)
    for c in range(s.shape[1]):
        sc, yc = s[keep[:, c], c], y[keep[:, c], c]
        npos, nneg = int(yc.sum()), int((~yc).sum())
        if npos and nneg:
            r = rankdata(sc)  # average ranks for ties
            out[c] = (r[yc].sum() - npos * (npos + 1) / 2) / (npos * nneg)
    return out


def roc_auc(scores: np.ndarray, labels: np.ndarray, *, mask: np.ndarray | None = None,
            label_mask: np.ndarray | None = None) -> float:
    """Macro ROC-AUC over classes with both positives and negatives (others skipped).

    Equal to `sklearn.metrics.roc_auc_score(average="macro")` when every class
    has both. Raises ValueError when no class qualifies (and as `_prepare`).
    """
    auc = roc_auc_per_class(scores, labels, mask=mask, label_mask=label_mask)
    return _mean_over_classes(auc, "roc_auc: no class has both positive and negative examples")


def skipped_classes(
    labels: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    label_mask: np.ndarray | None = None,
) -> list[int]:
    """Class ids `[K]` that have no unmasked positive (skipped by mAP)."""
    labels = np.asarray(labels)
    _, y, keep = _prepare(np.zeros(labels.shape), labels, mask, label_mask, "skipped_classes")
    return [int(c) for c in np.flatnonzero(~(y & keep).any(0))]


def _dcase_pr_counts(
    s: np.ndarray, y: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TP, FP, FN `[T]` of the decision `score >= t` for each threshold t (as the DCASE code)."""
    order = np.sort(s)
    pos = np.sort(s[y])
    n_above = len(order) - np.searchsorted(order, thresholds, side="left")
    tp = len(pos) - np.searchsorted(pos, thresholds, side="left")
    fp = n_above - tp
    fn = len(pos) - tp
    return tp.astype(np.float64), fp.astype(np.float64), fn.astype(np.float64)


def _dcase_auprc(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> float:
    """Area under the DCASE P-R curve (counts given for descending thresholds).

    P = TP / max(TP+FP, 0.5), R = TP / max(TP+FN, 0.5); the points (R=0, P=1)
    and (R=1, P=0) are added at both ends; trapezoidal rule (`sklearn.metrics.auc`).
    Recall is non-decreasing along descending thresholds, so this order is the
    official "sort by ascending recall" (ties kept in threshold order).
    """
    mu = 0.5
    p = tp / np.maximum(tp + fp, mu)
    r = tp / np.maximum(tp + fn, mu)
    recalls = np.r_[0.0, r, 1.0]
    precisions = np.r_[1.0, p, 0.0]
    return float(np.trapezoid(precisions, recalls))


def _dcase_thresholds(s: np.ndarray, min_threshold: float) -> np.ndarray:
    """Distinct scores >= min_threshold plus 1.0, descending (official `evaluate`)."""
    t = np.unique(np.r_[s[s >= min_threshold], 1.0])
    return t[::-1]


def micro_auprc(scores: np.ndarray, labels: np.ndarray, *, mask: np.ndarray | None = None,
                label_mask: np.ndarray | None = None, min_threshold: float = 0.01) -> float:
    """Micro-averaged AUPRC of DCASE 2019 Task 5 (Urban Sound Tagging), coarse-level definition.

    All unmasked (clip, class) pairs are pooled. Thresholds are the distinct
    scores >= `min_threshold` (the official code skips scores below 0.01 to save
    time) plus 1.0; at each the prediction is `score >= t`; TP/FP/FN are
    counted over all pairs, P = TP / max(TP+FP, 0.5), R = TP / max(TP+FN, 0.5);
    the curve, in ascending recall, gets (R=0, P=1) prepended and (R=1, P=0)
    appended and is integrated with the trapezoidal rule. Scores are expected
    to be probabilities in [0, 1]. (Pooling equals the official per-class
    counts summed at the union of thresholds.) Note the official quirk kept here:
    the threshold 1.0 contributes the point (R=0, P=0) when no score reaches 1,
    so only scores that are exactly 1 for positives reach an AUPRC of 1.

    Source: `metrics.py` (`evaluate`, `micro_averaged_auprc`) of
    github.com/sonyc-project/urban-sound-tagging-baseline. Not reproduced: the
    fine-level "incomplete tag" (X) coarsening of that code; fine-level X
    entries should be masked with `label_mask` instead.

    Args:
      scores, labels: `[N, C]`; mask `[N]`, label_mask `[N, C]` as `average_precision_per_class`.
      min_threshold: lowest threshold considered.

    Returns:
      AUPRC in [0, 1].

    Raises:
      ValueError: shape mismatch, non-finite scores, or no unmasked entry.
    """
    s, y, keep = _prepare(scores, labels, mask, label_mask, "micro_auprc")
    s, y = s[keep], y[keep]
    if s.size == 0:
        raise ValueError("micro_auprc: no unmasked (clip, class) entry")
    t = _dcase_thresholds(s, min_threshold)
    return _dcase_auprc(*_dcase_pr_counts(s, y, t))


def macro_auprc_per_class(scores: np.ndarray, labels: np.ndarray, *, mask: np.ndarray | None = None,
                          label_mask: np.ndarray | None = None,
                          min_threshold: float = 0.01) -> np.ndarray:
    """DCASE 2019 Task 5 AUPRC of each class `[C]` (same curve as `micro_auprc`, one column).

    Thresholds are the distinct scores of that class's column (as the official
    `evaluate`, which loops over coarse categories). A class without positives
    gets the official code's value (its recall is 0 everywhere), not NaN.
    """
    s, y, keep = _prepare(scores, labels, mask, label_mask, "macro_auprc")
    out = np.zeros(s.shape[1])
    for c in range(s.shape[1]):
        sc, yc = s[keep[:, c], c], y[keep[:, c], c]
        if sc.size == 0:
            out[c] = np.nan
            continue
        out[c] = _dcase_auprc(*_dcase_pr_counts(sc, yc, _dcase_thresholds(sc, min_threshold)))
    return out


def macro_auprc(scores: np.ndarray, labels: np.ndarray, *, mask: np.ndarray | None = None,
                label_mask: np.ndarray | None = None, min_threshold: float = 0.01) -> float:
    """Macro-averaged AUPRC of DCASE 2019 Task 5: uniform mean of `macro_auprc_per_class`.

    Source: `macro_averaged_auprc` in the sonyc-project/urban-sound-tagging-baseline
    `metrics.py`. Classes with every entry masked are left out of the mean.
    """
    per = macro_auprc_per_class(
        scores, labels, mask=mask, label_mask=label_mask, min_threshold=min_threshold
    )
    return _mean_over_classes(per, "macro_auprc: no unmasked entry")


def lwlrap_per_class(scores: np.ndarray, labels: np.ndarray, *, mask: np.ndarray | None = None,
                     label_mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-class label-ranking average precision and class weights, both `[C]`.

    For each clip and each of its positive classes j: precision = (positives
    ranked at or above j) / (rank of j), ranks among the clip's unmasked classes,
    a tie counted as ranked above (the pessimistic convention of
    `sklearn.metrics.label_ranking_average_precision_score`; the DCASE reference
    breaks ties by `argsort` order instead, identical without ties). Per-class
    value = mean over that class's positive entries; weight = its share of all
    positive entries. Masked entries take part neither as positives nor as competitors.

    Source: DCASE 2019 Task 2 / FSDKaggle2019 reference ("lwlrap" Colab by Dan
    Ellis, `calculate_per_class_lwlrap`).

    Returns:
      (per_class `[C]`, NaN for a class with no positive; weight `[C]`, summing to 1).

    Raises:
      ValueError: shape mismatch, non-finite scores, or no positive entry at all.
    """
    s, y, keep = _prepare(scores, labels, mask, label_mask, "lwlrap")
    y = y & keep
    n, c = s.shape
    prec_sum = np.zeros(c)
    for i in range(n):
        pos = np.flatnonzero(y[i])
        if pos.size == 0:
            continue
        si, ki, yi = s[i], keep[i], y[i]
        ge = si[None, :] >= si[pos][:, None]  # [P, C]: class k ranked at or above positive j
        rank = (ge & ki[None, :]).sum(1)
        hits = (ge & yi[None, :]).sum(1)
        prec_sum[pos] += hits / rank
    count = y.sum(0)
    if count.sum() == 0:
        raise ValueError("lwlrap: no positive (clip, class) entry")
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(count > 0, prec_sum / np.maximum(count, 1), np.nan)
    return per_class, count / count.sum()


def lwlrap(scores: np.ndarray, labels: np.ndarray, *, mask: np.ndarray | None = None,
           label_mask: np.ndarray | None = None) -> float:
    """Label-weighted label-ranking average precision (DCASE 2019 Task 2 metric).

    = sum_c weight_c * per_class_c (see `lwlrap_per_class`), which equals
    `sklearn.metrics.label_ranking_average_precision_score(y, scores,
    sample_weight=y.sum(1))` on unmasked data (every positive label counts once).
    """
    per_class, weight = lwlrap_per_class(scores, labels, mask=mask, label_mask=label_mask)
    return float(np.nansum(per_class * weight))


def tagging_metrics(scores: np.ndarray, labels: np.ndarray, *, mask: np.ndarray | None = None,
                    label_mask: np.ndarray | None = None) -> dict[str, float | list[int]]:
    """All multi-label metrics at once: mAP, roc_auc, micro_auprc, macro_auprc, lwlrap,
    and `skipped_classes` (class ids without an unmasked positive, excluded from mAP).

    `scores` should be probabilities (sigmoid) for the DCASE AUPRCs (thresholds >= 0.01).
    """
    kw = dict(mask=mask, label_mask=label_mask)
    return {
        "mAP": mean_average_precision(scores, labels, **kw),
        "roc_auc": roc_auc(scores, labels, **kw),
        "micro_auprc": micro_auprc(scores, labels, **kw),
        "macro_auprc": macro_auprc(scores, labels, **kw),
        "lwlrap": lwlrap(scores, labels, **kw),
        "skipped_classes": skipped_classes(labels, **kw),
    }
