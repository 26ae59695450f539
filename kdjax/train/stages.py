"""Runs staged experiments: one stage config by its kind, or every run of a staged config.

Each stage has a `kind` (default "train"), dispatched through `KINDS`:
  train   optimise parameters (kdjax.train.loop.train_and_evaluate)
  invert  optimise inputs against frozen models and write synthetic shards (kdjax.train.invert)
  cache   run frozen models or an external extractor once over a dataset and store arrays by
          clip index (kdjax.train.cache)
`run_stages` runs every run of a staged config in order (the stage list and the references
between stages: kdjax.train.stage_list); a run whose `result.json` exists is skipped, so
re-running the same command after a crash resumes where it stopped. It then writes
`<workdir>/summary.json` (kdjax.train.summary).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import jax
import ml_collections

from kdjax.train.cache import cache_arrays
from kdjax.train.invert import invert_and_save
from kdjax.train.loop import train_and_evaluate
from kdjax.train.stage_list import stage_runs
from kdjax.train.summary import format_summary, summarize

# The function that runs one stage config of each kind.
KINDS = {"train": train_and_evaluate, "invert": invert_and_save, "cache": cache_arrays}


def run_config(cfg: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Runs one stage config by its `kind` (train / invert / cache); returns its result dict.

    Raises:
      ValueError: an unknown kind.
    """
    kind = cfg.get("kind", "train")
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: expected one of {tuple(KINDS)}")
    return KINDS[kind](cfg, workdir)


def run_stages(cfg: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Runs (or resumes) every stage run and writes `<workdir>/summary.json`; returns the summary."""
    workdir = os.path.abspath(workdir)
    t0 = time.time()
    for name, k, wd, c in stage_runs(cfg, workdir):
        if os.path.exists(os.path.join(wd, "result.json")):
            continue
        if jax.process_index() == 0:
            print(f"== stage {name} seed {k}: {wd}", flush=True)
        run_config(c, wd)
    summary = summarize(cfg, workdir)
    summary["wall_time_s"] = time.time() - t0
    if jax.process_index() == 0:
        with open(os.path.join(workdir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        print(format_summary(summary), flush=True)
    return summary
