"""Every recipe config in configs/ runs end to end for 2 steps at `variant=tiny` (DESIGN.md
"a one-step end-to-end test for every config"), and frozen teachers stay bit-identical."""

import importlib
import pathlib

import jax
import numpy as np
import pytest

from kdjax.train import stage_list, stages, summary
from kdjax.train.checkpoint import load_best_variables
from kdjax.train.setup import resolve_path

CONFIGS = sorted(p.stem for p in (pathlib.Path(__file__).resolve().parents[1] / "configs").glob("*.py")
                 if p.stem not in ("__init__", "common"))


def _leaves(v):
    return [np.asarray(x) for x in jax.tree.leaves(v)]


# configs/fsdd.py (the main job) already runs end to end at variant=tiny in
# tests/train/test_loop.py (test_stages_summary_and_skip: every stage, 2 seeds;
# test_every_stage_runs_and_teacher_stays_bit_identical: the teacher check), so it is not
# trained a third time here (~140 s of CI time).
# configs/east.py at variant=tiny needs BirdNET for its cache stage and has six stages (~90 s
# here); tests/train/test_east.py runs its cache -> probe -> dcor_kd chain end to end (a
# stand-in extractor; BirdNET itself on one clip) and checks every arm's weights.
COVERED_ELSEWHERE = {"fsdd": "tests/train/test_loop.py runs configs/fsdd.py at variant=tiny",
                     "temporal_kd": "tests/train/test_temporal_kd.py runs configs/temporal_kd.py at variant=tiny",
                     "east": "tests/train/test_east.py runs configs/east.py's stages at variant=tiny"}


@pytest.mark.parametrize("name", CONFIGS)
def test_config_runs_two_steps_at_variant_tiny(name, tmp_path, data_dir):
    if name in COVERED_ELSEWHERE:
        pytest.skip(COVERED_ELSEWHERE[name])
    mod = importlib.import_module(f"configs.{name}")
    cfg = mod.get_config("variant=tiny")
    if "stages" not in cfg:
        stages.run_config(cfg, str(tmp_path))
        return
    with cfg.unlocked():
        cfg.seeds = 1
        if cfg.get("folds"):
            cfg.folds = list(cfg.folds)[:1]
    runs = stage_list.stage_runs(cfg, str(tmp_path))
    for st, _, _wd, c in runs:
        assert c.get("kind", "train") != "train" or c.num_steps <= 2, f"{name}:{st} runs {c.num_steps} steps at tiny"
    seen = {}
    for st, _, wd, c in runs:
        before = {t: _leaves(load_best_variables(resolve_path(tc.checkpoint, wd),
                                                 tc.get("checkpoint_model", t)))
                  for t, tc in (c.get("teachers", {}) or {}).items()}
        stages.run_config(c, wd)
        for t, tc in (c.get("teachers", {}) or {}).items():
            after = _leaves(load_best_variables(resolve_path(tc.checkpoint, wd),
                                                tc.get("checkpoint_model", t)))
            assert all(np.array_equal(a, b) for a, b in zip(before[t], after, strict=True)), f"{st}: teacher {t} changed"
        seen[st] = True
    assert seen
    s = summary.summarize(cfg, str(tmp_path))
    assert set(s["stages"]) == set(seen)
