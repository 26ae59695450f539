"""configs/results/east/round2/make_table.py: on fake raw2 trees with hand-chosen accuracies the
intervals equal scipy computations (plain t; Nadeau-Bengio: t_{0.975, n-1} with the variance
scaled by 1/n + 80/260), the secondaries' Holm p-values equal statsmodels', the verdicts follow
REPRODUCTION.md, a partial tree gives "n = k, incomplete" and lists what is missing, the command
rebuilds its README block idempotently; and the committed raw2/birdnet runs all parse."""

import json

import numpy as np
import pytest
from scipy import stats

from configs.results.east.round2 import make_table as mt

RATIO = 80 / 260
FOLDS = [f"fold{f}" for f in range(1, 6)]
# hand-chosen test accuracies (multiples of 1/80, ESC-10's 80 test clips per fold)
NONE = [0.8000, 0.8125, 0.7750, 0.8500, 0.7875]
DCOR = [0.8625, 0.8250, 0.8500, 0.8750, 0.8125]  # dcor - none: +.0625 +.0125 +.075 +.025 +.025
KD = [0.7875, 0.8125, 0.7500, 0.8625, 0.7500]
DCOR_KD = [0.8500, 0.8500, 0.7750, 0.8750, 0.8000]
PROBE = [0.9000, 0.8750, 0.9125, 0.9375, 0.8500]


def _run(raw, teacher, stage, fold, acc, *, converged=True, best=300, last=460, time_s=600.0, steps=1000):
    d = raw / teacher / stage / fold
    d.mkdir(parents=True)
    model = "probe" if stage == "probe" else "student"
    res = {"steps": steps, "train_time_s": time_s, "params": {model: 100}, "last_step": last,
           "stopped_early": converged, "early_stopping": {"patience": 8},
           "models": {model: {"best_step": best, "last_step": last, "converged": converged,
                              "validation": {"accuracy": 0.9}, "test": {"accuracy": acc}}}}
    (d / "result.json").write_text(json.dumps(res))


def _cache(raw, teacher, fold, time_s=100.0):
    d = raw / teacher / "cache" / fold
    d.mkdir(parents=True)
    (d / "result.json").write_text(json.dumps({"kind": "cache", "summary": {"num_clips": 400, "time_s": time_s}}))


def _tree(raw, teacher="birdnet", arms=None, folds=FOLDS):
    arms = arms if arms is not None else dict(none=NONE, dcor=DCOR, probe=PROBE, kd=KD, dcor_kd=DCOR_KD)
    for k, f in enumerate(folds):
        if teacher == "birdnet":
            _cache(raw, teacher, f)
        for stage, acc in arms.items():
            if k < len(acc):
                _run(raw, teacher, stage, f, acc[k], time_s=500.0 + 100 * k)


def _hand(x, y, ratio=0.0):
    """(mean, low, high, p) of x - y by scipy: Student's t with n - 1 df, variance s^2 (1/n + ratio)."""
    d = np.asarray(x) - np.asarray(y)
    n = len(d)
    se = np.sqrt((1 / n + ratio) * d.var(ddof=1))
    lo, hi = stats.t.interval(0.95, n - 1, loc=d.mean(), scale=se)
    return d.mean(), lo, hi, 2 * stats.t.sf(abs(d.mean()) / se, n - 1)


def test_full_table_intervals_holm_and_verdict_are_the_hand_computation(tmp_path):
    raw = tmp_path / "raw2"
    _tree(raw)
    md, n = mt.build("birdnet", raw=raw, here=tmp_path / "round2")
    assert n["effect"] == 0.01 and n["test_train_ratio"] == pytest.approx(RATIO, abs=1e-15)
    p = n["primary"]
    assert p["n"] == 5 and p["folds"] == FOLDS and p["complete"]
    mean, lo, hi, _ = _hand(DCOR, NONE)
    assert mean == pytest.approx(0.04, abs=1e-12)
    # kdjax.train.stats uses the 3-decimal t table (2.776 for 4 df; scipy 2.7764)
    assert (p["plain"]["ci95_low"], p["plain"]["ci95_high"]) == pytest.approx((lo, hi), abs=1e-4)
    mean, lo, hi, pv = _hand(DCOR, NONE, RATIO)
    nb = p["nadeau_bengio"]
    assert (nb["mean"], nb["ci95_low"], nb["ci95_high"]) == pytest.approx((mean, lo, hi), abs=1e-4)
    assert nb["p_value"] == pytest.approx(pv, rel=1e-9)
    # by hand: s^2 = 0.0029375 / 4, s = 0.027099; half-width 2.776 s sqrt(1/5 + 80/260) = 0.053601
    assert (nb["ci95_low"], nb["ci95_high"]) == pytest.approx((0.04 - 0.053601, 0.04 + 0.053601), abs=2e-6)
    assert p["verdict"] == "inconclusive" and p["converged_runs"] == 10 and p["runs"] == 10
    assert "| dcor - none | 5 | +4.00 | [+0.64, +7.36] | [-1.36, +9.36] | 5.36 |" in md
    assert "**inconclusive**" in md

    from statsmodels.stats.multitest import multipletests

    sec = n["secondary"]
    assert list(sec) == ["kd-none", "dcor_kd-none"]
    ps = []
    for key, arm in (("kd-none", KD), ("dcor_kd-none", DCOR_KD)):
        mean, lo, hi, pv = _hand(arm, NONE, RATIO)
        s = sec[key]["nadeau_bengio"]
        assert (s["mean"], s["ci95_low"], s["ci95_high"]) == pytest.approx((mean, lo, hi), abs=1e-4)
        assert s["p_value"] == pytest.approx(pv, rel=1e-9)
        ps.append(s["p_value"])
    want = multipletests(ps, method="holm")[1]
    assert [sec[k]["holm_p"] for k in sec] == pytest.approx(list(want), abs=1e-12)
    p1, p2 = sorted(ps)  # Holm by hand for two: min(1, 2 p_(1)), then max(that, p_(2))
    assert sorted(s["holm_p"] for s in sec.values()) == pytest.approx([min(1, 2 * p1), max(min(1, 2 * p1), p2)])

    k = n["kept"]  # outside the Holm family: no holm_p
    mean, lo, hi, _ = _hand(DCOR, PROBE, RATIO)
    assert (k["arm"], k["baseline"], k["n"], k["holm_p"]) == ("dcor", "probe", 5, None)
    assert (k["nadeau_bengio"]["ci95_low"], k["nadeau_bengio"]["ci95_high"]) == pytest.approx((lo, hi), abs=1e-4)
    mean, lo, hi, _ = _hand(DCOR, PROBE)
    assert (k["plain"]["ci95_low"], k["plain"]["ci95_high"]) == pytest.approx((lo, hi), abs=1e-4)

    a = n["arms"]
    assert list(a) == ["none", "dcor", "probe", "kd", "dcor_kd"]
    assert a["dcor"]["mean"] == pytest.approx(np.mean(DCOR)) and a["dcor"]["std"] == pytest.approx(np.std(DCOR, ddof=1))
    assert a["none"]["converged"] == 5 and a["none"]["at_ceiling"] == 0 and a["none"]["ceiling"] == 1000
    # per-run times 500..900 s at 460 steps each: mean 700 s, 1.52 s per step
    assert "| 5/5 | 300/460, 300/460, 300/460, 300/460, 300/460 (1000) | 0/5 | 700 [500, 900] | 1.52 |" in md
    assert "Cache: 5 folds, 2000 clip extractions in 500 s (4.00 clips/s" in md
    assert n["missing"] == {} and (n["finished_runs"], n["planned_runs"]) == (30, 30)
    assert "under-trained" not in md.lower()


@pytest.mark.parametrize("diffs,converged,want", [
    ([0.05, 0.0625, 0.05, 0.0625, 0.05], True, "reproduced"),   # NB low +0.0416 > 0
    ([0.0] * 5, True, "refuted"),                                # [0, 0] excludes +0.01
    ([0.0] * 5, False, "inconclusive"),                          # ... but not with unconverged runs
])
def test_primary_verdict_follows_reproduction_md(tmp_path, diffs, converged, want):
    raw = tmp_path / "raw2"
    _tree(raw, arms=dict(none=NONE))
    for k, f in enumerate(FOLDS):
        _run(raw, "birdnet", "dcor", f, NONE[k] + diffs[k], converged=converged or k > 0,
             last=1000 if not converged and k == 0 else 460)
    _, n = mt.build("birdnet", raw=raw, here=tmp_path)
    assert n["primary"]["verdict"] == want


def test_partial_tree_shows_what_is_there_and_gives_no_verdict(tmp_path):
    raw = tmp_path / "raw2"
    _tree(raw, arms=dict(none=NONE, dcor=DCOR[:3], kd=KD[:1]))
    md, n = mt.build("birdnet", raw=raw, here=tmp_path / "round2")
    p = n["primary"]
    assert (p["n"], p["complete"], p["verdict"], p["runs_to_decide"]) == (3, False, None, None)
    mean, lo, hi, _ = _hand(DCOR[:3], NONE[:3], RATIO)  # df 2: t 4.303
    assert (p["nadeau_bengio"]["ci95_low"], p["nadeau_bengio"]["ci95_high"]) == pytest.approx((lo, hi), abs=1e-4)
    assert "none: n = 3, incomplete" in md and "**inconclusive**" not in md
    s = n["secondary"]["kd-none"]
    assert s["n"] == 1 and s["plain"] is None and s["diff"] == pytest.approx(KD[0] - NONE[0])
    assert "| kd - none | 1 | -1.25 (1 fold) |" in md and "n = 1, incomplete" in md
    assert "| dcor_kd - none | 0 | no paired fold yet |" in md and "dcor_kd-none" not in n["secondary"]
    assert n["kept"] is None and "| dcor - probe | 0 | no paired fold yet |" in md
    assert n["missing"] == {"probe": FOLDS, "dcor": ["fold4", "fold5"], "kd": FOLDS[1:], "dcor_kd": FOLDS}
    assert (n["finished_runs"], n["planned_runs"]) == (14, 30)  # cache 5 + none 5 + dcor 3 + kd 1
    assert "Finished: 14 of 30 planned runs" in md and "missing: probe fold1, fold2, fold3, fold4, fold5; dcor fold4" in md


def test_musicnn_borrows_the_shared_none_arm(tmp_path):
    raw = tmp_path / "raw2"
    _tree(raw, arms=dict(none=NONE))
    md, n = mt.build("musicnn", raw=raw, here=tmp_path)
    assert "No run of this teacher collected yet" in md and n["finished_runs"] == 0
    _tree(raw, teacher="musicnn", arms=dict(dcor=DCOR, probe=PROBE[:2]))
    md, n = mt.build("musicnn", raw=raw, here=tmp_path)
    assert n["primary"]["baseline_values"] == NONE and n["primary"]["verdict"] == "inconclusive"
    assert "| none (shared) | 5 |" in md and "`none` from `" in md
    assert n["kept"]["n"] == 2 and "n = 2, incomplete" in md
    # musicnn plans cache, probe, dcor, kd, dcor_kd of its own: 25 runs (the none arm is BirdNET's)
    assert n["planned_runs"] == 25 and n["finished_runs"] == 7
    assert n["missing"] == {"cache": FOLDS, "probe": FOLDS[2:], "kd": FOLDS, "dcor_kd": FOLDS}


def test_a_run_of_another_config_is_refused(tmp_path):
    raw = tmp_path / "raw2"
    _tree(raw, arms=dict(none=NONE))
    _run(raw, "birdnet", "dcor", "fold1", 0.9, steps=300)
    with pytest.raises(ValueError, match="steps 300"):
        mt.build("birdnet", raw=raw, here=tmp_path)


def test_command_rebuilds_its_readme_block_idempotently(tmp_path, capsys):
    raw, here = tmp_path / "raw2", tmp_path / "round2"
    _tree(raw, arms=dict(none=NONE, dcor=DCOR[:2]))
    readme = tmp_path / "README.md"
    prose = ("# EAsT\n\n<!-- kdjax.report:begin birdnet -->\nround one\n<!-- kdjax.report:end birdnet -->\n\n"
             "## Second round\n\n<!-- kdjax.report:begin round2_birdnet -->\nold\n"
             "<!-- kdjax.report:end round2_birdnet -->\n\nafter\n")
    readme.write_text(prose)
    argv = ["birdnet", "--readme", str(readme)]
    mt.main(argv, raw=raw, here=here)
    first, js = readme.read_text(), (here / "tables_birdnet.json").read_text()
    md, nums = mt.build("birdnet", raw=raw, here=here)
    assert md in capsys.readouterr().out and json.loads(js) == json.loads(json.dumps(nums))
    head, rest = first.split("<!-- kdjax.report:begin round2_birdnet -->\n")
    block, tail = rest.split("<!-- kdjax.report:end round2_birdnet -->")
    assert block == md and head == prose.split("<!-- kdjax.report:begin round2_birdnet -->")[0]
    assert tail == "\n\nafter\n" and "round one" in head
    mt.main(argv, raw=raw, here=here)
    assert readme.read_text() == first and (here / "tables_birdnet.json").read_text() == js


def test_committed_birdnet_runs_all_parse():
    """Every committed run of raw2/birdnet is read (cache and train stages, the `none` arm on all
    5 folds), with the stored config of the runs (round2/config_birdnet.json: the Plan's)."""
    raw = mt.RAW2 / "birdnet"
    md, n = mt.build("birdnet")
    assert n["effect"] == 0.01 and n["test_train_ratio"] == pytest.approx(80 / 260, abs=1e-15)
    files = sorted(raw.glob("*/fold*/result.json"))
    assert files
    for f in files:
        stage, fold = f.parent.parent.name, f.parent.name
        if stage == "cache":
            assert fold in n["cache"]
        else:
            acc = json.loads(f.read_text())["models"]["probe" if stage == "probe" else "student"]["test"]["accuracy"]
            assert n["arms"][stage]["runs"][fold]["test"] == acc
    assert n["finished_runs"] == len(files) and n["arms"]["none"]["n"] == 5
    assert sum(len(m) for m in n["missing"].values()) == n["planned_runs"] - len(files)
