"""Statistics of paired comparisons over seeds or folds: intervals, multiplicity, verdicts.

Recipes compare an arm with its baseline run on the same seeds/folds, so the per-seed
differences `d_i = arm_i - baseline_i` are paired (/work/shared/REPRODUCTION.md §4-5):
  * `paired_difference`: Student's t interval of their mean,
    `mean(d) +- t_{0.975, n-1} * std(d, ddof=1) / sqrt(n)`, and its two-sided p-value (the
    paired t test, equal to scipy.stats.ttest_rel);
  * `nadeau_bengio`: the corrected resampled t interval for repeats whose training sets
    overlap (k-fold cross-validation), variance `(1/J + n2/n1) * s^2` (Nadeau & Bengio,
    "Inference for the Generalization Error", Machine Learning 52, 2003, eq. of the corrected
    resampled t test; Bouckaert & Frank 2004 use the same for cross-validation);
  * `holm`: Holm's step-down adjusted p-values (Holm 1979; statsmodels' `multipletests(method=
    "holm")`) for the secondary comparisons;
  * `verdict`: reproduced / refuted / inconclusive against a smallest effect of interest, and
    `runs_to_decide`: how many paired runs would make an interval narrow enough to decide.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as _sp

VERDICTS = ("reproduced", "refuted", "inconclusive")


# Two-sided 95% quantiles t_{0.975, df} of Student's t distribution, df = 1..30, as in standard
# tables (3 decimals; within 2.3e-4 relative of scipy.stats.t.ppf, checked in tests/test_stats.py).
# The tabulated values are kept, not the exact quantile, so that the committed results tables
# rebuild to the same digits (e.g. EAsT's +0.7 lower bound is 0.6502 points with 2.776 and
# 0.6493 with 2.7764); p-values use the exact t distribution.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
         2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
         2.052, 2.048, 2.045, 2.042)


def t975(df: int) -> float:
    """`t_{0.975, df}`, the two-sided 95% quantile of Student's t: the tabulated 3-decimal value
    for df <= 30, scipy's exact quantile beyond (where tables switch to the normal 1.960).

    Raises:
      ValueError: df < 1.
    """
    if df < 1:
        raise ValueError(f"df={df}: need at least 2 paired values for an interval")
    return _T975[df - 1] if df <= len(_T975) else float(_sp.t.ppf(0.975, df))


def _pvalue(mean: float, se: float, df: int) -> float:
    """Two-sided p-value of `mean / se` under Student's t with `df` degrees of freedom."""
    if se == 0.0:
        return 1.0 if mean == 0.0 else 0.0
    return float(2.0 * _sp.t.sf(abs(mean / se), df))


def paired_difference(arm: Sequence[float], baseline: Sequence[float]) -> dict[str, float | int | bool]:
    """Mean paired difference `arm - baseline` over seeds/folds with its 95% t interval.

    Args:
      arm, baseline: `[n]` metric values, element i of both from the same seed/fold.

    Returns:
      `{"n", "mean", "std", "ci95_low", "ci95_high", "half_width", "p_value", "significant"}`:
      `std` is the sample std (ddof 1) of the differences, `half_width` the interval's half
      width, `p_value` the two-sided paired t test's, `significant` whether the interval
      excludes 0. With n = 1 the interval is infinite and p = 1 (not significant).

    Raises:
      ValueError: different lengths or no values.
    """
    a, b = np.asarray(arm, np.float64), np.asarray(baseline, np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired_difference: expected two equal-length 1-D sequences, got {a.shape} and {b.shape}")
    d = a - b
    n = d.size
    mean = float(d.mean())
    if n == 1:
        return {"n": 1, "mean": mean, "std": 0.0, "ci95_low": -math.inf, "ci95_high": math.inf,
                "half_width": math.inf, "p_value": 1.0, "significant": False}
    std = float(d.std(ddof=1))
    se = std / math.sqrt(n)
    half = t975(n - 1) * std / math.sqrt(n)  # this order of operations: the committed tables' bits
    lo, hi = mean - half, mean + half
    return {"n": n, "mean": mean, "std": std, "ci95_low": lo, "ci95_high": hi, "half_width": half,
            "p_value": _pvalue(mean, se, n - 1), "significant": bool(lo > 0 or hi < 0)}


def nadeau_bengio(arm: Sequence[float], baseline: Sequence[float], test_train_ratio: float) -> dict[str, float | int | bool]:
    """Paired difference over J overlapping train/test splits with the corrected variance.

    The J differences of k-fold cross-validation are correlated (their training sets share
    (k-2)/(k-1) of the data), so `s^2 / J` understates the variance of their mean; Nadeau &
    Bengio (2003) replace it with `(1/J + n2/n1) * s^2`, where `n2/n1` is the ratio of test to
    train set size, and use Student's t with J - 1 degrees of freedom. For r times repeated
    k-fold cross-validation, pass all J = k r paired differences: this is then the corrected
    repeated k-fold test of Bouckaert & Frank (2004, "Evaluating the replicability of
    significance tests for comparing learning algorithms", PAKDD), variance
    `(1/(k r) + n2/n1) * s^2`, df k r - 1.

    Args:
      arm, baseline: `[J]` metric values of the same folds.
      test_train_ratio: `n2 / n1` (test clips / training clips of one split; e.g. 1 / (k - 1)
        for k-fold cross-validation without a held-out validation part).

    Returns:
      The keys of `paired_difference` (interval, half width, p-value and significance from the
      corrected variance) plus `"test_train_ratio"`.

    Raises:
      ValueError: different lengths, fewer than 2 values, or a ratio <= 0.
    """
    if not test_train_ratio > 0:
        raise ValueError(f"nadeau_bengio: test_train_ratio={test_train_ratio}: expected n_test / n_train > 0")
    d = paired_difference(arm, baseline)
    if d["n"] < 2:
        raise ValueError("nadeau_bengio: need at least 2 paired folds")
    n = int(d["n"])
    se = math.sqrt((1.0 / n + test_train_ratio) * float(d["std"]) ** 2)
    half = t975(n - 1) * se
    lo, hi = d["mean"] - half, d["mean"] + half
    return {**d, "ci95_low": lo, "ci95_high": hi, "half_width": half, "p_value": _pvalue(d["mean"], se, n - 1),
            "significant": bool(lo > 0 or hi < 0), "test_train_ratio": float(test_train_ratio)}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order.

    Sorted ascending `p_(1) <= ... <= p_(m)`: `adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))`.
    A comparison is significant at level alpha when its adjusted p-value is <= alpha.
    Source: Holm, "A simple sequentially rejective multiple test procedure", Scand. J. Statist.
    6 (1979); equal to statsmodels' `multipletests(p, method="holm")[1]`.

    Raises:
      ValueError: a p-value outside [0, 1] (NaN included).
    """
    p = np.asarray(p_values, np.float64)
    if p.size and not np.all((p >= 0) & (p <= 1)):
        raise ValueError(f"holm: p-values must lie in [0, 1], got {p.tolist()}")
    m = p.size
    order = np.argsort(p, kind="stable")
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adj
    return [float(x) for x in out]


def _signed(effect: float, direction: str) -> float:
    if direction not in ("greater", "less"):
        raise ValueError(f"direction={direction!r}: expected 'greater' (arm above baseline) or 'less'")
    return abs(float(effect)) if direction == "greater" else -abs(float(effect))


def verdict(low: float, high: float, effect: float, direction: str, converged: bool = True) -> str:
    """The verdict of a paired interval `[low, high]` on the paper's claim (REPRODUCTION.md §5).

    * "reproduced": the interval excludes 0 on the paper's side (low > 0 for "greater",
      high < 0 for "less");
    * "refuted": the interval excludes the smallest effect of interest on the paper's side
      (high < |effect| for "greater", low > -|effect| for "less"), only with converged runs;
    * "inconclusive": neither (also every would-be "refuted" with unconverged runs).

    Args:
      low, high: the interval (metric units, arm - baseline).
      effect: the smallest effect of interest (metric units; its sign is taken from direction).
      direction: "greater" (the paper says arm > baseline) or "less".
      converged: whether the runs converged (a "refuted" needs them to).

    Raises:
      ValueError: an unknown direction or low > high.
    """
    e = _signed(effect, direction)
    if low > high:
        raise ValueError(f"verdict: interval [{low}, {high}] has low > high")
    if (low > 0) if e > 0 else (high < 0):
        return "reproduced"
    if converged and ((high < e) if e > 0 else (low > e)):
        return "refuted"
    return "inconclusive"


def runs_to_decide(std: float, effect: float, mean: float | None = None, direction: str = "greater",
                   test_train_ratio: float = 0.0, max_n: int = 10_000) -> int | None:
    """Paired runs n whose 95% interval would decide the verdict, if the paired SD (and mean)
    stay as observed.

    The half width at n runs is `t_{0.975, n-1} * std * sqrt(1/n + test_train_ratio)` (the plain
    interval for ratio 0, Nadeau-Bengio's for cross-validation folds). Without `mean`, the target
    is `|effect| / 2`: an interval narrower than the effect cannot hold both 0 and the effect, so
    it decides whatever the mean. With `mean` (signed by `direction`: m = mean for "greater",
    -mean for "less", e = |effect|), the interval centred on it decides once it excludes 0
    (half width < m, when m > 0) or the effect (half width < e - m, when m < e): target
    `max(m, e - m)`. Returns the smallest such n >= 2, or None beyond `max_n` (e.g. a
    Nadeau-Bengio interval whose floor `1.96 std sqrt(ratio)` is above the target).

    Raises:
      ValueError: effect == 0, std < 0, ratio < 0 or an unknown direction.
    """
    if effect == 0 or std < 0 or test_train_ratio < 0:
        raise ValueError(f"runs_to_decide: need effect != 0, std >= 0, ratio >= 0; got effect={effect}, "
                         f"std={std}, test_train_ratio={test_train_ratio}")
    e = abs(_signed(effect, direction))
    if mean is None:
        target = e / 2
    else:
        m = mean if direction == "greater" else -mean
        target = max(m, e - m)
    for n in range(2, max_n + 1):
        if t975(n - 1) * std * math.sqrt(1.0 / n + test_train_ratio) < target:
            return n
    return None


def mean_std(values: Sequence[float], scale: float = 1.0, digits: int = 4) -> str:
    """`mean +- std` (sample std, ddof 1) of `values * scale`; just the mean for one value."""
    v = np.asarray(values, np.float64) * scale
    if v.size == 0:
        return "-"
    if v.size == 1:
        return f"{v.mean():.{digits}f}"
    return f"{v.mean():.{digits}f} +- {v.std(ddof=1):.{digits}f}"


def format_interval(d: dict, scale: float = 1.0, digits: int = 4) -> str:
    """`+0.0123 [-0.0040, +0.0286]` of a paired_difference/nadeau_bengio dict (times `scale`)."""
    return (f"{scale * d['mean']:+.{digits}f} [{scale * d['ci95_low']:+.{digits}f}, "
            f"{scale * d['ci95_high']:+.{digits}f}]")


def format_difference(d: dict) -> str:
    """`+0.0123 [-0.0040, +0.0286] (n=5, not significant)`."""
    sig = "significant" if d["significant"] else "not significant"
    return f"{format_interval(d)} (n={d['n']}, {sig})"
