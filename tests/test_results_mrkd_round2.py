"""configs/results/mrkd/round2/make_table.py on the committed round-1 SC12 runs: the primary
peer-average gain equals a hand computation from the result.json files, and the secondary Holm
p-values equal statsmodels' `multipletests(method="holm")`."""

import json
import pathlib

import numpy as np
import pytest

from configs.results.mrkd.round2.make_table import build

RAW = pathlib.Path(__file__).resolve().parents[1] / "configs" / "results" / "mrkd" / "raw"


def _acc(run: pathlib.Path) -> dict[str, float]:
    m = json.loads((run / "result.json").read_text())["models"]
    return {p: v["test"]["accuracy"] for p, v in m.items()}


def test_primary_is_the_peer_average_paired_gain_and_secondary_is_holm_adjusted():
    md, n = build("sc12", 0.01, root=RAW)
    seeds = n["runs"]
    diffs = []
    for k in seeds:
        a, j = _acc(RAW / "sc12" / "alone" / k), _acc(RAW / "sc12" / "joint" / k)
        diffs.append(np.mean([j[p] - a[p] for p in a]))
    diffs = np.asarray(diffs)
    assert n["primary"]["mean"] == pytest.approx(diffs.mean(), abs=1e-12)
    assert n["primary"]["std"] == pytest.approx(diffs.std(ddof=1), abs=1e-12)
    from scipy import stats

    lo, hi = stats.t.interval(0.95, len(diffs) - 1, loc=diffs.mean(), scale=stats.sem(diffs))
    # kdjax.train.stats.t975 is the 3-decimal table value (4.303 for df 2, exact 4.30265)
    assert (n["primary"]["ci95_low"], n["primary"]["ci95_high"]) == pytest.approx((lo, hi), abs=2e-6)
    from statsmodels.stats.multitest import multipletests

    ps = [n["secondary"][p]["p_value"] for p in n["peers"]]
    want = multipletests(ps, method="holm")[1]
    assert [n["secondary"][p]["holm_p"] for p in n["peers"]] == pytest.approx(list(want), abs=1e-12)
    # round-1 runs stopped with their best validation step at the last: none converged, so an
    # interval below the effect could not say "refuted", and the table says under-trained
    assert n["convergence"]["joint"]["converged"] == 0
    assert "under-trained" in md and n["verdict"] in ("inconclusive", "reproduced")


def test_cross_validated_data_take_the_verdict_from_the_nadeau_bengio_interval():
    """ESC-10 (round-1 folds): the primary interval is the hand-computed corrected one,
    mean +- t_{0.975, J-1} sqrt((1/J + n2/n1) s^2), the plain one is printed beside it, and the
    per-peer p-values are the corrected t test's."""
    from scipy import stats

    from configs.results.mrkd.round2.make_table import NB_RATIO

    md, n = build("esc10", 0.01, root=RAW)
    ratio = NB_RATIO["esc10"]
    diffs = []
    for k in n["runs"]:
        a, j = _acc(RAW / "esc10" / "alone" / k), _acc(RAW / "esc10" / "joint" / k)
        diffs.append(np.mean([j[p] - a[p] for p in a]))
    d = np.asarray(diffs)
    se = np.sqrt((1 / len(d) + ratio) * d.var(ddof=1))
    lo, hi = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=se)
    assert (n["primary"]["ci95_low"], n["primary"]["ci95_high"]) == pytest.approx((lo, hi), abs=2e-4)
    plain = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    assert f"[{100 * plain[0]:+.2f}, {100 * plain[1]:+.2f}]" in md
    p = "logmel"
    x = np.asarray(n["per_run"][p]["joint"]) - np.asarray(n["per_run"][p]["alone"])
    t = x.mean() / np.sqrt((1 / len(x) + ratio) * x.var(ddof=1))
    assert n["secondary"][p]["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), len(x) - 1), rel=1e-6)
    # round-1 ESC-10 never converged (150 steps): inconclusive, never refuted
    assert n["verdict"] == "inconclusive" and "under-trained" in md


def test_local_esc10_defaults_are_the_round2_plan_and_round1_stays_reachable():
    """configs/mrkd.py local esc10 without arguments = the ESC-10 table's command
    (round2/run_esc10.py ARG); patience=0 turns the early stopping off; round 1's settings
    (dml, T = 1, 150 steps, last parameters) stay reachable by arguments."""
    from configs import mrkd
    from configs.results.mrkd.round2.run_esc10 import ARG

    assert mrkd.get_config("data=esc10").to_dict() == mrkd.get_config(ARG).to_dict()
    j = mrkd.get_config("data=esc10").stages.joint
    assert (j.num_steps, j.eval_every, j.early_stopping.patience, j.early_stopping.val_fraction) == (
        600, 40, 5, 0.2)
    assert (j.losses.mutual.kw.target, j.losses.mutual.kw.temperature) == ("ensemble", 3.0)
    off = mrkd.get_config("data=esc10,loss=dml,temperature=1,steps=150,eval_every=37,patience=0")
    assert off.stages.joint.early_stopping.patience == 0 and off.stages.joint.num_steps == 150
    assert off.stages.joint.losses.mutual.kw.target == "peers"
