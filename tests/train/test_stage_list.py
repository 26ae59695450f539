"""Repeated cross-validation (folds x seeds_per_fold) in kdjax.train.stage_list, its summary and
its report: the run list, the old list of fold-only / seed-only configs (against the starting
commit's code in /tmp/base when present), and the plain and Nadeau-Bengio intervals over the
n = k x r paired runs against a hand computation. No training: result.json files are written here.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys

import ml_collections
import pytest

from kdjax import report
from kdjax.report import render
from kdjax.train import summary
from kdjax.train.stage_list import SEED_STRIDE, stage_runs

BASE_TREE = "/tmp/base"  # a checkout of the starting commit 65be65b (the old stage_list)


def _cfg(folds=(1, 2, 3), seeds_per_fold=2, **extra) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.stages = {
        "teacher": {"seed": 7, "data": {"test_split": "test_fold{fold}", "train_split": "train_fold{fold}"}},
        "student": {"seed": 7, "data": {"test_split": "test_fold{fold}"}},
        "kd": {"seed": 7, "baseline": "student", "data": {"test_split": "test_fold{fold}"},
               "teachers": {"t": {"checkpoint": "teacher:teacher"}}, "note": "{stage:teacher}/x"},
    }
    c.run = "teacher,student,kd"
    c.seeds = 1
    if folds is not None:
        c.folds = list(folds)
    if seeds_per_fold is not None:
        c.seeds_per_fold = seeds_per_fold
    for k, v in extra.items():
        c[k] = v
    return c


def test_folds_times_seeds_runs():
    runs = stage_runs(_cfg(), "/w")
    kd = [(k, wd, c.seed, c.data.test_split, c.teachers.t.checkpoint, c.note)
          for n, k, wd, c in runs if n == "kd"]
    # r = 0: today's folders and seeds 7 + k; r = 1: fold<f>_seed1, seeds 7 + k + SEED_STRIDE
    assert SEED_STRIDE == 100
    assert kd == [
        (0, "/w/kd/fold1", 7, "test_fold1", "/w/teacher/fold1", "/w/teacher/fold1/x"),
        (1, "/w/kd/fold2", 8, "test_fold2", "/w/teacher/fold2", "/w/teacher/fold2/x"),
        (2, "/w/kd/fold3", 9, "test_fold3", "/w/teacher/fold3", "/w/teacher/fold3/x"),
        (100, "/w/kd/fold1_seed1", 107, "test_fold1", "/w/teacher/fold1_seed1", "/w/teacher/fold1_seed1/x"),
        (101, "/w/kd/fold2_seed1", 108, "test_fold2", "/w/teacher/fold2_seed1", "/w/teacher/fold2_seed1/x"),
        (102, "/w/kd/fold3_seed1", 109, "test_fold3", "/w/teacher/fold3_seed1", "/w/teacher/fold3_seed1/x"),
    ]
    # every stage lists the same 6 (folder, seed) pairs: arms paired by (fold, r), seeds all distinct
    by_stage = {}
    for n, _, wd, c in runs:
        by_stage.setdefault(n, []).append((os.path.basename(wd), c.seed))
    assert by_stage["teacher"] == by_stage["student"] == by_stage["kd"]
    assert len({s for _, s in by_stage["kd"]}) == 6
    assert [c.data.train_split for n, _, _, c in runs if n == "teacher"] == [f"train_fold{f}" for f in (1, 2, 3)] * 2


def test_seed_of_a_fold_run_does_not_depend_on_the_folds_run():
    """A `folds=N` prefix run (configs/mrkd.py) gives fold<f>_seed<r> the seed of the full run."""
    full = {os.path.basename(wd): c.seed for n, _, wd, c in stage_runs(_cfg(folds=[1, 2, 3, 4, 5], seeds_per_fold=3), "/w")
            if n == "kd"}
    part = {os.path.basename(wd): c.seed for n, _, wd, c in stage_runs(_cfg(folds=[1, 2], seeds_per_fold=3), "/w")
            if n == "kd"}
    assert len(full) == 15 and len(set(full.values())) == 15
    assert all(full[k] == v for k, v in part.items()) and len(part) == 6


def test_bad_seeds_per_fold():
    with pytest.raises(ValueError, match="seeds_per_fold=0"):
        stage_runs(_cfg(seeds_per_fold=0), "/w")
    with pytest.raises(ValueError, match="without folds"):
        stage_runs(_cfg(folds=None, seeds_per_fold=2), "/w")


def _listing(cfg, workdir="/w") -> list:
    return [[n, k, wd, c.to_dict()] for n, k, wd, c in stage_runs(cfg, workdir)]


def _old_listing(cfg_json: str) -> list:
    """stage_runs of the starting commit (/tmp/base) on the same config, in a subprocess."""
    code = ("import json, sys, ml_collections\n"
            "import kdjax.train.stage_list as s\n"
            "assert s.__file__.startswith('/tmp/base/'), s.__file__\n"
            "c = ml_collections.ConfigDict(json.loads(sys.stdin.read()))\n"
            "print(json.dumps([[n, k, wd, x.to_dict()] for n, k, wd, x in s.stage_runs(c, '/w')]))\n")
    env = {**os.environ, "PYTHONPATH": BASE_TREE, "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", code], input=cfg_json, capture_output=True, text=True,
                         env=env, cwd="/tmp", check=True)
    return json.loads(out.stdout)


def _recipe(name: str, arg: str) -> ml_collections.ConfigDict:
    return importlib.import_module(f"configs.{name}").get_config(arg)


@pytest.mark.skipif(not os.path.isdir(os.path.join(BASE_TREE, "kdjax")), reason="no checkout of the starting commit")
def test_old_configs_list_as_before():
    """Fold-only and seed-only configs (seeds_per_fold absent or 1) list exactly the old runs:
    same stages, folders, seeds and resolved configs as the starting commit's stage_runs."""
    cfgs = [_cfg(seeds_per_fold=None), _cfg(seeds_per_fold=1), _cfg(folds=None, seeds_per_fold=None, seeds=3),
            _recipe("mrkd", "data=esc10"), _recipe("mrkd", "data=sc12,seeds=3"), _recipe("east", "variant=local")]
    for cfg in cfgs:
        text = cfg.to_json()
        same = ml_collections.ConfigDict(json.loads(text))  # both sides read the same JSON round trip
        assert _listing(same) == _old_listing(text)


def _write(path, acc):
    os.makedirs(path, exist_ok=True)
    res = {"steps": 400, "train_time_s": 1.0, "params": {"student": 10},
           "models": {"student": {"best_step": 200, "last_step": 400, "converged": True,
                                  "test": {"accuracy": acc}, "validation": {"accuracy": acc}}}}
    with open(os.path.join(path, "result.json"), "w") as f:
        json.dump(res, f)


# 3 folds x 2 seeds; kd - student = [0.02, 0.01, 0.03, 0.00, 0.02, 0.04] in the listing order
BASE = {"fold1": 0.80, "fold2": 0.82, "fold3": 0.78, "fold1_seed1": 0.81, "fold2_seed1": 0.79, "fold3_seed1": 0.80}
DIFF = {"fold1": 0.02, "fold2": 0.01, "fold3": 0.03, "fold1_seed1": 0.00, "fold2_seed1": 0.02, "fold3_seed1": 0.04}


@pytest.fixture
def cv_workdir(tmp_path):
    cfg = _cfg()
    with cfg.unlocked():
        cfg.stages.student.models = {"student": {}}
        cfg.stages.kd.models = {"student": {}}
        cfg.stages.teacher.kind = "cache"  # not a train stage: summarize lists it apart
    for run, b in BASE.items():
        _write(tmp_path / "student" / run, b)
        _write(tmp_path / "kd" / run, b + DIFF[run])
    return cfg, str(tmp_path)


# Hand computation: mean 0.12 / 6 = 0.02; deviations 0, -.01, .01, -.02, 0, .02 -> sum of squares
# 0.001, s^2 = 0.001 / 5 = 2e-4; t_{0.975, 5} = 2.571 (n - 1 = 5 df).
# Plain: half = 2.571 * sqrt(2e-4 / 6). Corrected (Nadeau & Bengio; Bouckaert & Frank's r x k-fold
# form with n = k r = 6): half = 2.571 * sqrt((1/6 + n2/n1) * 2e-4).
def _half(ratio):
    return 2.571 * math.sqrt((1 / 6 + ratio) * 2e-4)


def test_summary_pairs_folds_times_seeds(cv_workdir):
    cfg, wd = cv_workdir
    s = summary.summarize(cfg, wd)
    kd = s["stages"]["kd"]
    assert [x["run"] for x in kd["runs"]] == ["fold1", "fold2", "fold3", "fold1_seed1", "fold2_seed1", "fold3_seed1"]
    p, nb = kd["paired_over_student"], kd["nadeau_bengio_over_student"]
    assert p["n"] == nb["n"] == 6
    assert p["mean"] == pytest.approx(0.02) and nb["mean"] == pytest.approx(0.02)
    assert p["std"] == pytest.approx(math.sqrt(2e-4))
    assert p["half_width"] == pytest.approx(2.571 * math.sqrt(2e-4 / 6))
    # no claim ratio: 1 / (K - 1) for K = 3 folds (not n - 1 = 5 runs)
    assert nb["test_train_ratio"] == pytest.approx(0.5)
    assert nb["half_width"] == pytest.approx(_half(0.5))
    assert nb["ci95_low"] == pytest.approx(0.02 - _half(0.5))
    assert s["folds"] == [1, 2, 3] and s["seeds_per_fold"] == 2
    with cfg.unlocked():
        cfg.claim = {"test_train_ratio": 0.25}
    nb = summary.summarize(cfg, wd)["stages"]["kd"]["nadeau_bengio_over_student"]
    assert nb["half_width"] == pytest.approx(_half(0.25))
    assert "nadeau_bengio_over_student" in summary.format_summary(s)


def test_report_pairs_folds_times_seeds(cv_workdir, tmp_path):
    cfg, wd = cv_workdir
    claim = dict(primary=dict(arm="kd", baseline="student"), metric="accuracy", effect=0.04, direction="greater")
    rep = report.build(wd, claim=claim)
    c = next(x for x in rep["comparisons"] if x["arm"] == "kd")
    assert sorted(c["runs"]) == sorted(BASE) and c["plain"]["n"] == 6
    assert c["plain"]["half_width"] == pytest.approx(2.571 * math.sqrt(2e-4 / 6))
    assert c["nadeau_bengio"]["test_train_ratio"] == pytest.approx(0.5)  # K = 3 folds
    assert c["nadeau_bengio"]["half_width"] == pytest.approx(_half(0.5))
    # runs_to_decide with the same n and ratio: the corrected half width at m runs against
    # max(m, e - m) = max(0.02, 0.02) = 0.02 (the interval [-0.0097, +0.0497] holds 0 and 0.04)
    need = next(m for m in range(2, 10_000) if _t(m - 1) * math.sqrt(2e-4) * math.sqrt(1 / m + 0.5) < 0.02)
    assert rep["verdict"]["interval"] == "nadeau_bengio" and rep["verdict"]["runs_to_decide"] == need
    assert rep["verdict"]["verdict"] == "inconclusive" and rep["verdict"]["more_runs"] == need - 6
    md = "\n".join(render.stage_table(rep) + render.verdict_lines(rep))
    assert "fold1_seed1 0.8100" in md and "6 paired runs" in md
    # the same numbers from summary.json alone (runs named by their folder)
    s = summary.summarize(cfg, wd)
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(s))
    c2 = next(x for x in report.build(str(path), claim=claim)["comparisons"] if x["arm"] == "kd")
    assert c2["nadeau_bengio"]["half_width"] == pytest.approx(_half(0.5))


def _t(df):
    from kdjax.train.stats import t975
    return t975(df)


@pytest.mark.parametrize("recipe,arg", [("mrkd", "data=esc10,seeds_per_fold=2"), ("east", "variant=local,seeds_per_fold=2")])
def test_recipe_seeds_per_fold_argument(recipe, arg):
    cfg = _recipe(recipe, arg)
    repeated = [n for n in str(cfg.run).split(",") if cfg.stages[n].get("repeat", True)]
    runs = [(n, os.path.basename(wd)) for n, _, wd, _ in stage_runs(cfg, "/w") if n in repeated]
    folders = [f"fold{f}" for f in range(1, 6)] + [f"fold{f}_seed1" for f in range(1, 6)]
    assert runs == [(n, f) for n in repeated for f in folders]


def test_nadeau_bengio_is_the_repeated_k_fold_form():
    """stats.nadeau_bengio on the n = k r = 6 differences of 3 folds x 2 seeds: Bouckaert & Frank's
    t = mean / sqrt((1/(k r) + n2/n1) s^2) with k r - 1 = 5 df, by hand (scipy only for the p-value)."""
    from scipy import stats as sp

    from kdjax.train.stats import nadeau_bengio

    base = list(BASE.values())
    arm = [b + DIFF[k] for k, b in BASE.items()]
    nb = nadeau_bengio(arm, base, 0.25)
    assert nb["n"] == 6 and nb["half_width"] == pytest.approx(_half(0.25))
    t = 0.02 / math.sqrt((1 / 6 + 0.25) * 2e-4)
    assert nb["p_value"] == pytest.approx(2 * sp.t.sf(t, 5))
