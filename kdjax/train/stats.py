"""Paired comparisons of two arms over the same seeds (or folds): mean difference and 95% interval.

Recipes compare an arm with its baseline run on the same seeds/folds, so the per-seed
differences are paired; the interval is Student's t interval of their mean:
`mean(d) +- t_{0.975, n-1} * std(d, ddof=1) / sqrt(n)`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# Two-sided 95% quantiles t_{0.975, df} of Student's t distribution, df = 1..30 (standard tables;
# equal to scipy.stats.t.ppf(0.975, df) to 3 decimals, checked in tests/train/test_stats.py).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
         2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
         2.052, 2.048, 2.045, 2.042)


def t975(df: int) -> float:
    """t_{0.975, df}; the normal 1.960 beyond df = 30 (within 2% there).

    Raises:
      ValueError: df < 1.
    """
    if df < 1:
        raise ValueError(f"df={df}: need at least 2 paired values for an interval")
    return _T975[df - 1] if df <= len(_T975) else 1.960


def paired_difference(arm: Sequence[float], baseline: Sequence[float]) -> dict[str, float | int | bool]:
    """Mean paired difference `arm - baseline` over seeds/folds with its 95% t interval.

    Args:
      arm, baseline: `[n]` metric values, element i of both from the same seed/fold.

    Returns:
      `{"n", "mean", "std", "ci95_low", "ci95_high", "significant"}`; `significant` is whether
      the interval excludes 0. With n = 1 the interval is infinite (not significant).

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
                "significant": False}
    std = float(d.std(ddof=1))
    half = t975(n - 1) * std / math.sqrt(n)
    lo, hi = mean - half, mean + half
    return {"n": n, "mean": mean, "std": std, "ci95_low": lo, "ci95_high": hi,
            "significant": bool(lo > 0 or hi < 0)}


def format_difference(d: dict) -> str:
    """`+0.0123 [-0.0040, +0.0286] (n=5, not significant)`."""
    sig = "significant" if d["significant"] else "not significant"
    return f"{d['mean']:+.4f} [{d['ci95_low']:+.4f}, {d['ci95_high']:+.4f}] (n={d['n']}, {sig})"
