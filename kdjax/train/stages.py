"""Multi-stage experiments: e.g. train a teacher, then students with and without KD, over seeds.

A staged config has `stages` (name -> a full train config), `run` (the stage
names to run, in order) and `seeds` (how many seeds each student stage
repeats). Stage `s` runs in `<workdir>/<s>` (the teacher stage, `repeat=False`)
or `<workdir>/<s>/seed<k>`; a stage whose `result.json` exists is skipped, so
re-running the same command after a crash resumes where it stopped.
`summary.json` reports each stage's test metric (mean, std over seeds),
parameter count and training time, and the gain of each stage over its
`baseline` stage.
"""

from __future__ import annotations

import copy
import json
import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from kdjax.train.loop import train_and_evaluate


def stage_runs(
    cfg: ml_collections.ConfigDict, workdir: str, names: list[str] | None = None
) -> list[tuple[str, int, str, ml_collections.ConfigDict]]:
    """(stage, seed, workdir, config) for every run of the staged config, in order.

    Args:
      names: the stages to list (default: those in `cfg.run`).

    Raises:
      ValueError: `run` names a stage that does not exist.
    """
    if names is None:
        names = [s for s in str(cfg.run).split(",") if s]
    runs = []
    for name in names:
        if name not in cfg.stages:
            raise ValueError(f"run={cfg.run!r}: no stage {name!r}; stages are {list(cfg.stages)}")
        st = cfg.stages[name]
        repeat = st.get("repeat", True)
        seeds = range(int(cfg.seeds)) if repeat else [0]
        for k in seeds:
            c = copy.deepcopy(st)
            with c.unlocked():
                c.seed = int(st.seed) + k
            wd = os.path.join(workdir, name, f"seed{k}") if repeat else os.path.join(workdir, name)
            runs.append((name, k, wd, c))
    return runs


def run_stages(cfg: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Runs (or resumes) every stage run and writes `<workdir>/summary.json`; returns the summary."""
    workdir = os.path.abspath(workdir)
    t0 = time.time()
    for name, k, wd, c in stage_runs(cfg, workdir):
        if os.path.exists(os.path.join(wd, "result.json")):
            continue
        if jax.process_index() == 0:
            print(f"== stage {name} seed {k}: {wd}", flush=True)
        train_and_evaluate(c, wd)
    summary = summarize(cfg, workdir)
    summary["wall_time_s"] = time.time() - t0
    if jax.process_index() == 0:
        with open(os.path.join(workdir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        print(format_summary(summary), flush=True)
    return summary


def summarize(cfg: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Collects every finished run's result.json into per-stage statistics.

    All stages with results in `workdir` are included, not only those just run, so a
    `stage=kd` run still reports its gain over an earlier `stage=student` run.
    """
    stages: dict[str, Any] = {}
    # ConfigDict keys are sorted by name: list unrepeated stages (teachers) first, then
    # baselines, then the stages compared with them.
    order = sorted(cfg.stages, key=lambda n: (bool(cfg.stages[n].get("repeat", True)),
                                              bool(cfg.stages[n].get("baseline"))))
    for name, _, wd, c in stage_runs(cfg, workdir, names=order):
        path = os.path.join(wd, "result.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            r = json.load(f)
        model = c.get("eval_model") or next(iter(c.models))
        metric = c.get("eval_metric", "accuracy")
        m = r["models"][model]
        st = stages.setdefault(name, {"model": model, "metric": metric, "params": r["params"][model],
                                      "teacher_params": r.get("teacher_params", {}), "runs": []})
        st["runs"].append({"seed": c.seed, "test": m["test"][metric],
                           "validation": m.get("validation", {}).get(metric),
                           "best_step": m["best_step"], "train_time_s": r["train_time_s"]})
    for st in stages.values():
        tests = np.array([x["test"] for x in st["runs"]])
        st["test_mean"] = float(tests.mean())
        st["test_std"] = float(tests.std(ddof=1)) if len(tests) > 1 else 0.0
        st["train_time_s"] = float(sum(x["train_time_s"] for x in st["runs"]))
    for name, st in stages.items():
        base = cfg.stages[name].get("baseline")
        if base and base in stages:
            st["gain_over_" + base] = st["test_mean"] - stages[base]["test_mean"]
    return {"stages": stages, "seeds": int(cfg.seeds)}


def format_summary(summary: dict[str, Any]) -> str:
    """A plain-text table of the summary."""
    lines = [f"{'stage':<10} {'params':>9} {'test (mean +- std over seeds)':>32} {'train s':>9}"]
    for name, st in summary["stages"].items():
        vals = ", ".join(f"{x['test']:.4f}" for x in st["runs"])
        lines.append(
            f"{name:<10} {st['params']:>9,d} {st['test_mean']:>10.4f} +- {st['test_std']:.4f} "
            f"[{vals}] {st['train_time_s']:>8.1f}"
        )
        for k, v in st.items():
            if k.startswith("gain_over_"):
                lines.append(f"{'':<10} {k}: {v:+.4f}")
    return "\n".join(lines)
