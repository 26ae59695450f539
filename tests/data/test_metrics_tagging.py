"""Multi-label metrics vs scikit-learn and vs straightforward re-implementations of the
official DCASE 2019 Task 5 (AUPRC) and Task 2 (lwlrap) reference code."""

import numpy as np
import pytest
from sklearn import metrics as skm

from kdjax.train import metrics as M


def _random(n=60, c=7, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < 0.3).astype(np.float32)
    y[0] = 1.0  # every class has a positive
    s = rng.random((n, c))
    if ties:
        s = np.round(s * 4) / 4  # many exact ties
    return s, y


def _ref_dcase_auprc(s, y, min_threshold=0.01):
    """Loop version of the official sonyc `evaluate` + `micro_averaged_auprc` (coarse mode)."""
    t = np.sort(s.copy())
    t = t[np.searchsorted(t, min_threshold):]
    t = np.unique(np.append(t, 1.0))[::-1]
    tps, fps, fns = [], [], []
    for th in t:
        pred = s >= th
        tps.append(np.sum(pred & y))
        fps.append(np.sum(pred & ~y))
        fns.append(np.sum(~pred & y))
    tp, fp, fn = map(np.asarray, (tps, fps, fns))
    p = tp / np.maximum(tp + fp, 0.5)
    r = tp / np.maximum(tp + fn, 0.5)
    idx = np.argsort(r, kind="stable")
    return skm.auc(np.r_[0.0, r[idx], 1.0], np.r_[1.0, p[idx], 0.0])


def _ref_lwlrap(truth, scores):
    """The DCASE 2019 Task 2 reference (argsort tie order), re-typed."""
    n, c = scores.shape
    prec = np.zeros((n, c))
    for i in range(n):
        pos = np.flatnonzero(truth[i] > 0)
        if not len(pos):
            continue
        retrieved = np.argsort(scores[i])[::-1]
        rankings = np.zeros(c, int)
        rankings[retrieved] = range(c)
        hit = np.zeros(c, bool)
        hit[rankings[pos]] = True
        cum = np.cumsum(hit)
        prec[i, pos] = cum[rankings[pos]] / (1 + rankings[pos])
    labels_per_class = (truth > 0).sum(0)
    w = labels_per_class / labels_per_class.sum()
    per = prec.sum(0) / np.maximum(1, labels_per_class)
    return float((per * w).sum())


@pytest.mark.parametrize("ties", [False, True])
def test_ap_and_auc_match_sklearn(ties):
    s, y = _random(ties=ties)
    ap = M.average_precision_per_class(s, y)
    np.testing.assert_allclose(ap, skm.average_precision_score(y, s, average=None), atol=1e-12)
    assert M.mean_average_precision(s, y) == pytest.approx(skm.average_precision_score(y, s))
    np.testing.assert_allclose(
        M.roc_auc_per_class(s, y), skm.roc_auc_score(y, s, average=None), atol=1e-12
    )
    assert M.roc_auc(s, y) == pytest.approx(skm.roc_auc_score(y, s, average="macro"))


def test_class_without_positive_is_skipped_and_reported():
    s, y = _random()
    y[:, 3] = 0
    ap = M.average_precision_per_class(s, y)
    assert np.isnan(ap[3]) and not np.isnan(np.delete(ap, 3)).any()
    keep = [0, 1, 2, 4, 5, 6]
    assert M.mean_average_precision(s, y) == pytest.approx(
        skm.average_precision_score(y[:, keep], s[:, keep])
    )
    assert M.roc_auc(s, y) == pytest.approx(skm.roc_auc_score(y[:, keep], s[:, keep]))
    assert M.skipped_classes(y) == [3]
    assert M.tagging_metrics(s, y)["skipped_classes"] == [3]


def test_label_mask_excludes_entries():
    s, y = _random(n=80)
    rng = np.random.default_rng(1)
    lm = (rng.random(y.shape) > 0.2).astype(np.float32)
    lm[0] = 1
    ap = M.average_precision_per_class(s, y, label_mask=lm)
    auc = M.roc_auc_per_class(s, y, label_mask=lm)
    for c in range(y.shape[1]):
        k = lm[:, c] > 0
        assert ap[c] == pytest.approx(skm.average_precision_score(y[k, c], s[k, c]))
        assert auc[c] == pytest.approx(skm.roc_auc_score(y[k, c], s[k, c]))
    # masked entries really don't matter: scramble them
    s2 = np.where(lm > 0, s, rng.random(s.shape))
    y2 = np.where(lm > 0, y, 1 - y)
    assert M.lwlrap(s2, y2, label_mask=lm) == pytest.approx(M.lwlrap(s, y, label_mask=lm))
    assert M.micro_auprc(s2, y2, label_mask=lm) == pytest.approx(M.micro_auprc(s, y, label_mask=lm))
    assert M.macro_auprc(s2, y2, label_mask=lm) == pytest.approx(M.macro_auprc(s, y, label_mask=lm))
    # example mask [N] == dropping the rows
    m = np.ones(len(s))
    m[-10:] = 0
    assert M.mean_average_precision(s, y, mask=m) == pytest.approx(
        M.mean_average_precision(s[:-10], y[:-10])
    )


@pytest.mark.parametrize("ties", [False, True])
def test_dcase_auprc_matches_reference(ties):
    s, y = _random(n=50, c=5, seed=3, ties=ties)
    yb = y > 0.5
    assert M.micro_auprc(s, y) == pytest.approx(_ref_dcase_auprc(s.ravel(), yb.ravel()), abs=1e-12)
    per = [_ref_dcase_auprc(s[:, c], yb[:, c]) for c in range(5)]
    np.testing.assert_allclose(M.macro_auprc_per_class(s, y), per, atol=1e-12)
    assert M.macro_auprc(s, y) == pytest.approx(np.mean(per))


def test_dcase_auprc_perfect_and_known_value():
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], np.float32)
    assert M.micro_auprc(y, y) == pytest.approx(1.0)
    # official quirk: the extra threshold 1.0 adds the point (R=0, P=0), so a perfect
    # ranking with scores < 1 gets 0.5 (curve (0,1) (0,0) (1,1) (1,.5) (1,0))
    assert M.micro_auprc(y * 0.9 + 0.05, y) == pytest.approx(0.5)
    # hand-computed: scores .2 (pos) .6 (neg); thresholds 1, .6, .2 (descending):
    # t=1: nothing (P0 R0); t=.6: neg only (P0 R0); t=.2: both (P.5 R1)
    # curve (R,P): (0,1) (0,0) (0,0) (1,.5) (1,0) -> area (0 + .5) / 2 = .25
    assert M.micro_auprc(np.array([[0.2, 0.6]]), np.array([[1.0, 0.0]])) == pytest.approx(0.25)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lwlrap_reference_and_sklearn_relation(seed):
    s, y = _random(n=40, c=6, seed=seed)
    y[5] = 0  # a clip without labels contributes nothing
    ref = _ref_lwlrap(y, s)
    assert M.lwlrap(s, y) == pytest.approx(ref, abs=1e-12)
    keep = y.sum(1) > 0
    sk = skm.label_ranking_average_precision_score(y[keep], s[keep], sample_weight=y[keep].sum(1))
    assert M.lwlrap(s, y) == pytest.approx(sk, abs=1e-12)


def test_lwlrap_ties_follow_sklearn():
    s, y = _random(n=40, c=6, seed=4, ties=True)
    sk = skm.label_ranking_average_precision_score(y, s, sample_weight=y.sum(1))
    assert M.lwlrap(s, y) == pytest.approx(sk, abs=1e-12)
    # single-label case: lwlrap == LRAP == mean reciprocal rank of the true class
    s1 = np.array([[0.9, 0.1, 0.0], [0.2, 0.5, 0.3]])
    y1 = np.array([[0.0, 1, 0], [0, 0, 1]])
    assert M.lwlrap(s1, y1) == pytest.approx((1 / 2 + 1 / 2) / 2)


def test_bad_inputs():
    with pytest.raises(ValueError, match="scores"):
        M.mean_average_precision(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="no class has a positive"):
        M.mean_average_precision(np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="label_mask"):
        M.lwlrap(np.zeros((3, 2)), np.ones((3, 2)), label_mask=np.ones((3,)))
