"""Convergence budgets from the command line (issue #22): every recipe's config arguments
`patience`, `min_delta`, `val_fraction`, `plateau`, `plateau_factor` (configs/common.py
`BUDGET_ARGS`, `apply_budgets`) and absl's `--config.stages.<s>.early_stopping.<field>=...`
overrides (the off blocks every train config carries)."""

from __future__ import annotations

import importlib
import json
import os
import sys

import pytest
from absl import flags
from ml_collections import config_flags

from configs import common
from kdjax.train.convergence import early_stopping_config, plateau_config

from .conftest import REPO

RECIPES = ("fsdd", "mrkd", "iusp", "temporal_kd", "east", "frami")


def _train_stages(cfg):
    return {n: s for n, s in cfg.stages.items() if s.get("kind", "train") == "train"}


@pytest.mark.parametrize("recipe", RECIPES)
def test_budget_arguments_set_every_train_stage(recipe):
    mod = importlib.import_module(f"configs.{recipe}")
    base = mod.get_config("variant=tiny")
    cfg = mod.get_config("variant=tiny,patience=4,min_delta=0.01,val_fraction=0.3,plateau=2,"
                         "plateau_factor=0.25")  # fmt: skip
    stages = _train_stages(cfg)
    assert stages and set(stages) == set(_train_stages(base))
    for name, st in stages.items():
        es = early_stopping_config(st)
        assert (es["patience"], es["min_delta"], es["val_fraction"]) == (4, 0.01, 0.3), name
        rp = plateau_config(st)
        assert (rp["patience"], rp["factor"]) == (2, 0.25), name
        # the rest of each block as the recipe set it (or the off block's defaults)
        b = base.stages[name]
        assert es["val_seed"] == b.early_stopping.val_seed
        assert rp["rtol"] == b.reduce_on_plateau.rtol and rp["cooldown"] == 0
    # other stages (cache, invert) untouched
    for name, st in cfg.stages.items():
        if name not in stages:
            assert st.to_dict() == base.stages[name].to_dict(), name


@pytest.mark.parametrize("recipe", ("fsdd", "mrkd", "iusp", "temporal_kd", "frami"))
def test_budgets_off_by_default(recipe):
    """Without the arguments nothing stops early or plateaus (EAsT's paper training has its own
    early stopping and plateau schedule: tests/train/test_east.py)."""
    cfg = importlib.import_module(f"configs.{recipe}").get_config("variant=tiny")
    for name, st in _train_stages(cfg).items():
        assert early_stopping_config(st) is None and plateau_config(st) is None, name


def test_budget_argument_errors():
    from configs import fsdd, mrkd

    with pytest.raises(ValueError, match="'patiense' unknown"):
        fsdd.get_config("variant=tiny,patiense=3")
    with pytest.raises(ValueError, match="patience='x': expected int"):
        mrkd.get_config("variant=tiny,patience=x")
    with pytest.raises(ValueError, match="min_delta=0.1: needs patience"):
        fsdd.get_config("variant=tiny,min_delta=0.1")
    with pytest.raises(ValueError, match="plateau_factor=0.1: needs plateau"):
        fsdd.get_config("variant=tiny,plateau_factor=0.1")
    with pytest.raises(ValueError, match="expected >= 0"):
        fsdd.get_config("variant=tiny,patience=-1")
    with pytest.raises(ValueError, match="val_fraction=1.5"):
        fsdd.get_config("variant=tiny,patience=2,val_fraction=1.5")


def _absl_config(*argv: str):
    """The config as kdjax.main's `--config` flag parses it (config_flags, locked; the flag reads
    its overrides from sys.argv, so argv is put there while parsing)."""
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "", flag_values=fv, lock_config=True)
    saved, sys.argv = sys.argv, ["prog", *argv]
    try:
        fv(sys.argv)
    finally:
        sys.argv = saved
    return fv.config


def test_absl_overrides_reach_the_blocks():
    path = os.path.join(REPO, "configs", "fsdd.py")
    cfg = _absl_config(
        f"--config={path}:variant=tiny",
        "--config.stages.kd.early_stopping.patience=5",
        "--config.stages.kd.early_stopping.min_delta=0.02",
        "--config.stages.kd.reduce_on_plateau.patience=3",
        "--config.stages.kd.reduce_on_plateau.factor=0.2",
    )
    es, rp = early_stopping_config(cfg.stages.kd), plateau_config(cfg.stages.kd)
    assert (es["patience"], es["min_delta"]) == (5, 0.02)
    assert (rp["patience"], rp["factor"]) == (3, 0.2)
    assert early_stopping_config(cfg.stages.student) is None  # only the named stage
    # a misspelt field is an error (kdjax.main's check names the path and the fields there)
    from kdjax.main import check_config_overrides

    err = check_config_overrides(
        [f"--config={path}:variant=tiny", "--config.stages.kd.early_stopping.patiense=5"]
    )
    assert err is not None and "patiense" in err and "patience" in err, err
    with pytest.raises(Exception, match="patiense"):
        _absl_config(f"--config={path}:variant=tiny", "--config.stages.kd.early_stopping.patiense=5")


def test_apply_budgets_keeps_a_recipes_blocks():
    """train_stage merges a recipe's own block over the off block (all fields stay present)."""
    st = common.train_stage(
        data=common.data("fsdd", clip_seconds=1.0), models={}, losses={}, batch_size=2,
        num_steps=1, lr=1e-3, eval_every=1, checkpoint_every=1,
        reduce_on_plateau=dict(factor=0.5, patience=3, rtol=1e-3),
    )  # fmt: skip
    assert st.reduce_on_plateau.to_dict() == dict(
        factor=0.5, patience=3, rtol=1e-3, atol=0.0, cooldown=0, min_scale=0.0
    )
    assert early_stopping_config(st) is None


@pytest.mark.slow
def test_tiny_run_with_patience_stops_early(tmp_path, data_dir, monkeypatch):
    """`patience=1` from the config argument (plus absl overrides for a longer tiny budget and a
    validation every step) stops the tiny FSDD student before its 30-step ceiling, at the first
    validation that did not improve on the best (Keras' rule with patience 1)."""
    from kdjax.train.loop import train_and_evaluate
    from kdjax.train.stage_list import stage_runs

    monkeypatch.setenv("KDJAX_DATA_DIR", str(data_dir))
    path = os.path.join(REPO, "configs", "fsdd.py")
    cfg = _absl_config(
        f"--config={path}:variant=tiny,stage=student,seeds=1,patience=1",
        "--config.stages.student.num_steps=30",
        "--config.stages.student.eval_every=1",
        "--config.stages.student.checkpoint_every=10",
        "--config.stages.student.quiet=True",
    )
    ((_, _, wd, run_cfg),) = stage_runs(cfg, str(tmp_path))
    result = train_and_evaluate(run_cfg, wd)
    rows = [json.loads(x) for x in open(os.path.join(wd, "metrics.jsonl"))]
    accs = [r["val/student/accuracy"] for r in rows if "val/student/accuracy" in r]
    first_no_gain = next(i for i in range(1, len(accs)) if accs[i] <= max(accs[:i]))
    assert result["stopped_early"] and result["last_step"] == first_no_gain + 1 < 30, accs
    assert result["early_stopping"]["patience"] == 1
    assert result["models"]["student"]["converged"] is True
