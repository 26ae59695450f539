"""kdjax.train.stats against scipy, statsmodels and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kdjax.train import stats

scipy_stats = pytest.importorskip("scipy.stats")

A = [0.81, 0.85, 0.79, 0.88, 0.83]
B = [0.80, 0.82, 0.80, 0.84, 0.80]


def test_paired_t_interval_and_p_value_match_scipy():
    d = stats.paired_difference(A, B)
    diff = np.subtract(A, B)
    lo, hi = scipy_stats.t.interval(0.95, diff.size - 1, loc=diff.mean(), scale=scipy_stats.sem(diff))
    # the interval uses the tabulated t (2.776 for df 4): within 2e-4 of scipy's exact one
    np.testing.assert_allclose(d["half_width"], (hi - lo) / 2, rtol=2e-4)
    np.testing.assert_allclose([d["ci95_low"], d["ci95_high"]], [lo, hi], atol=2e-4 * (hi - lo))
    np.testing.assert_allclose(d["p_value"], scipy_stats.ttest_rel(A, B).pvalue, rtol=1e-10)
    assert d["significant"] == (lo > 0 or hi < 0)
    # hand-computed: d = [.01, .03, -.01, .04, .03], mean .02, sd sqrt(.0016/4) = .02
    assert d["mean"] == pytest.approx(0.02) and d["std"] == pytest.approx(0.02)
    assert d["half_width"] == pytest.approx(2.776 * 0.02 / math.sqrt(5), rel=1e-12)


def test_t975_table_matches_scipy():
    for df in range(1, 31):
        assert stats.t975(df) == pytest.approx(scipy_stats.t.ppf(0.975, df), rel=2.5e-4)
    assert stats.t975(100) == pytest.approx(scipy_stats.t.ppf(0.975, 100), rel=1e-12)


def test_paired_difference_edge_cases():
    one = stats.paired_difference([1.0], [0.5])
    assert one["ci95_low"] == -math.inf and not one["significant"] and one["p_value"] == 1.0
    same = stats.paired_difference([0.5, 0.6], [0.4, 0.5])  # zero spread: the interval is a point
    assert same["p_value"] == 0.0 and same["significant"]
    with pytest.raises(ValueError, match="equal-length"):
        stats.paired_difference([1, 2], [1])
    with pytest.raises(ValueError, match="df=0"):
        stats.t975(0)


def test_nadeau_bengio_corrected_variance_by_hand():
    arm, base = [0.80, 0.85, 0.75, 0.90, 0.82], [0.78, 0.80, 0.75, 0.85, 0.79]
    d = np.subtract(arm, base)
    J, ratio = 5, 80 / 320  # ESC-10: one fold tests, the other four train
    s2 = np.sum((d - d.mean()) ** 2) / (J - 1)
    se = math.sqrt((1 / J + ratio) * s2)  # Nadeau & Bengio (2003): (1/J + n2/n1) s^2
    half = 2.776 * se  # t_{0.975, 4} (table)
    nb = stats.nadeau_bengio(arm, base, ratio)
    np.testing.assert_allclose([nb["ci95_low"], nb["ci95_high"]], [d.mean() - half, d.mean() + half], rtol=1e-12)
    np.testing.assert_allclose(nb["p_value"], 2 * scipy_stats.t.sf(abs(d.mean()) / se, J - 1), rtol=1e-12)
    plain = stats.paired_difference(arm, base)
    # the correction widens the plain interval by sqrt(1 + J * n2/n1)
    assert nb["half_width"] / plain["half_width"] == pytest.approx(math.sqrt(1 + J * ratio))
    assert plain["significant"] and not nb["significant"]
    with pytest.raises(ValueError, match="test_train_ratio"):
        stats.nadeau_bengio(arm, base, 0.0)


@pytest.mark.parametrize("p", [[0.01, 0.04, 0.03, 0.20], [0.5, 0.001, 0.049, 0.049, 0.9], [0.03], []])
def test_holm_matches_statsmodels(p):
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    got = stats.holm(p)
    if p:
        np.testing.assert_allclose(got, multipletests(p, method="holm")[1], rtol=1e-12)
    else:
        assert got == []


def test_holm_by_hand_and_errors():
    # sorted .01 .03 .04 .20 -> 4*.01=.04, 3*.03=.09, 2*.04=.08->.09 (monotone), 1*.20=.20
    assert stats.holm([0.01, 0.04, 0.03, 0.20]) == pytest.approx([0.04, 0.09, 0.09, 0.20])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stats.holm([0.1, float("nan")])


@pytest.mark.parametrize("low,high,effect,direction,converged,expected", [
    (0.01, 0.05, 0.02, "greater", True, "reproduced"),     # excludes 0 on the paper's side
    (-0.03, 0.01, 0.02, "greater", True, "refuted"),       # excludes +0.02
    (-0.03, 0.01, 0.02, "greater", False, "inconclusive"),  # ... but runs did not converge
    (-0.01, 0.03, 0.02, "greater", True, "inconclusive"),  # holds both 0 and the effect
    (-0.05, -0.01, 0.02, "greater", True, "refuted"),      # significant in the wrong direction
    (-0.05, -0.01, 0.02, "less", True, "reproduced"),
    (-0.01, 0.01, 0.02, "less", True, "refuted"),
    (-0.03, 0.01, -0.02, "less", True, "inconclusive"),    # the effect's sign follows direction
])
def test_verdict_rules(low, high, effect, direction, converged, expected):
    assert stats.verdict(low, high, effect, direction, converged) == expected


def test_verdict_errors():
    with pytest.raises(ValueError, match="direction"):
        stats.verdict(0, 1, 0.1, "up")
    with pytest.raises(ValueError, match="low > high"):
        stats.verdict(1, 0, 0.1, "greater")


def test_runs_to_decide_is_the_smallest_n_with_half_width_below_half_the_effect():
    sd, effect = 0.02, 0.02
    n = stats.runs_to_decide(sd, effect)
    half = lambda k: stats.t975(k - 1) * sd / math.sqrt(k)  # noqa: E731
    assert half(n) < effect / 2 <= half(n - 1)
    assert n == 18  # t_{.975,17} * .02 / sqrt(18) = .00995 < .01 <= t_{.975,16} .02 / sqrt(17) = .01028
    assert stats.runs_to_decide(0.0, 0.01) == 2
    assert stats.runs_to_decide(1.0, 1e-6, max_n=50) is None
    with pytest.raises(ValueError):
        stats.runs_to_decide(0.1, 0.0)


def test_runs_to_decide_from_the_observed_mean_and_for_folds():
    # mean +0.03 on the paper's side, effect 0.02: deciding needs a half width < max(.03, -.01) = .03
    n = stats.runs_to_decide(0.05, 0.02, mean=0.03)
    assert stats.t975(n - 1) * 0.05 / math.sqrt(n) < 0.03 <= stats.t975(n - 2) * 0.05 / math.sqrt(n - 1)
    # "less": mean -0.005 is m = +0.005 on the paper's side; the effect 0.02 is .015 away
    n = stats.runs_to_decide(0.05, 0.02, mean=-0.005, direction="less")
    assert stats.t975(n - 1) * 0.05 / math.sqrt(n) < 0.015 <= stats.t975(n - 2) * 0.05 / math.sqrt(n - 1)
    # Nadeau-Bengio: the half width never falls below 1.96 * std * sqrt(ratio)
    assert stats.runs_to_decide(0.04, 0.01, mean=0.05, test_train_ratio=0.25) is not None
    assert stats.runs_to_decide(0.04, 0.01, mean=0.03, test_train_ratio=0.25, max_n=2000) is None


def test_formatting():
    d = stats.paired_difference(A, B)
    assert stats.format_difference(d) == "+0.0200 [-0.0048, +0.0448] (n=5, not significant)"
    assert stats.mean_std([0.5, 0.7], scale=100, digits=1) == "60.0 +- 14.1"
    assert stats.mean_std([0.5]) == "0.5000" and stats.mean_std([]) == "-"
