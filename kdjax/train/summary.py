"""The summary of a staged workdir: every finished run's result.json as per-stage statistics.

`summarize` writes what `<workdir>/summary.json` holds: each stage's test metric (mean, std over
seeds/folds, per run), parameter count, training time, convergence counts, and the gain of each
stage over its `baseline` stage (paired by seed, with a 95% interval from kdjax.train.stats).
`format_summary` prints it as a table. kdjax.report builds the full report (verdicts, pictures).
"""

from __future__ import annotations

import json
import os
from typing import Any

import ml_collections
import numpy as np

from kdjax.train.stage_list import stage_runs
from kdjax.train.stats import format_difference, paired_difference


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
        if c.get("kind", "train") != "train":
            stages[name] = {"kind": c.kind, "runs": stages.get(name, {}).get("runs", []) + [r.get("summary", {})]}
            continue
        # the first DEPLOYED model (ConfigDict keys are sorted: a training-only "head" may come first)
        model = c.get("eval_model") or next(n for n in c.models if c.models[n].get("deploy", True))
        metric = c.get("eval_metric", "accuracy")
        m = r["models"][model]
        st = stages.setdefault(name, {"model": model, "metric": metric, "params": r["params"][model],
                                      "teacher_params": r.get("teacher_params", {}), "runs": []})
        st["runs"].append({"seed": c.seed, "test": m["test"][metric],
                           "validation": m.get("validation", {}).get(metric),
                           "best_step": m["best_step"], "train_time_s": r["train_time_s"],
                           "last_step": m.get("last_step"), "converged": m.get("converged"),
                           # every deployed model (several for mutual learning of peers)
                           "models": {n: x["test"][metric] for n, x in r["models"].items() if "test" in x}})
    for st in stages.values():
        if "kind" in st:
            continue
        tests = np.array([x["test"] for x in st["runs"]])
        st["test_mean"] = float(tests.mean())
        st["test_std"] = float(tests.std(ddof=1)) if len(tests) > 1 else 0.0
        st["train_time_s"] = float(sum(x["train_time_s"] for x in st["runs"]))
        # runs whose model converged (kdjax.train.loop.convergence); None = not recorded
        st["converged"] = sum(1 for x in st["runs"] if x["converged"])
        st["converged_known"] = sum(1 for x in st["runs"] if x["converged"] is not None)
    for name, st in stages.items():
        base = cfg.stages[name].get("baseline")
        if base and base in stages and "kind" not in stages[base]:
            st["gain_over_" + base] = st["test_mean"] - stages[base]["test_mean"]
            ours = {x["seed"]: x["test"] for x in st["runs"]}
            theirs = {x["seed"]: x["test"] for x in stages[base]["runs"]}
            common = sorted(set(ours) & set(theirs))
            if common:  # same seeds in both arms: the paired difference and its 95% interval
                st["paired_over_" + base] = paired_difference([ours[k] for k in common],
                                                              [theirs[k] for k in common])
    return {"stages": stages, "seeds": int(cfg.seeds)}


def format_summary(summary: dict[str, Any]) -> str:
    """A plain-text table of the summary."""
    lines = [f"{'stage':<10} {'params':>9} {'test (mean +- std over seeds)':>32} {'train s':>9}"]
    for name, st in summary["stages"].items():
        if "kind" in st:
            lines.append(f"{name:<10} ({st['kind']}) {st['runs'][-1] if st['runs'] else ''}")
            continue
        vals = ", ".join(f"{x['test']:.4f}" for x in st["runs"])
        lines.append(
            f"{name:<10} {st['params']:>9,d} {st['test_mean']:>10.4f} +- {st['test_std']:.4f} "
            f"[{vals}] {st['train_time_s']:>8.1f}"
        )
        for k, v in st.items():
            if k.startswith("gain_over_"):
                lines.append(f"{'':<10} {k}: {v:+.4f}")
            if k.startswith("paired_over_"):
                lines.append(f"{'':<10} {k}: {format_difference(v)}")
    return "\n".join(lines)
