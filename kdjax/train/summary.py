"""The summary of a staged workdir: every finished run's result.json as per-stage statistics.

`summarize` writes what `<workdir>/summary.json` holds: each stage's test metric (mean, std over
seeds/folds, per run, each run with its folder name `run`), parameter count, training time,
convergence counts, and the gain of each stage over its `baseline` stage (paired by seed, with a
95% interval from kdjax.train.stats: `paired_over_<b>`, the plain t interval over the n paired
runs, and with `folds` also `nadeau_bengio_over_<b>`, the corrected resampled t interval of
(repeated) k-fold cross-validation over the same n = folds x seeds_per_fold runs).
`format_summary` prints it as a table. kdjax.report builds the full report (verdicts, pictures).
"""

from __future__ import annotations

import json
import os
from typing import Any

import ml_collections
import numpy as np

from kdjax.train.stage_list import stage_runs
from kdjax.train.stats import format_difference, nadeau_bengio, paired_difference


def summarize(cfg: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Collects every finished run's result.json into per-stage statistics.

    All stages with results in `workdir` are included, not only those just run, so a
    `stage=kd` run still reports its gain over an earlier `stage=student` run.

    With `folds`, the corrected interval uses `cfg.claim.test_train_ratio` when the config has
    one, else `1 / (K - 1)` for K folds (K = max(number of folds, largest fold number), as
    kdjax.report.build.compare_arms), with n = all paired (fold, seed) runs and df = n - 1
    (Nadeau & Bengio 2003; Bouckaert & Frank 2004 for r x k-fold cross-validation).
    """
    stages: dict[str, Any] = {}
    # ConfigDict keys are sorted by name: list unrepeated stages (teachers) first, then
    # baselines, then the stages compared with them.
    order = sorted(cfg.stages, key=lambda n: (bool(cfg.stages[n].get("repeat", True)),
                                              bool(cfg.stages[n].get("baseline"))))
    for name, _, wd, c in stage_runs(cfg, workdir, names=order):
        run = os.path.basename(wd) if cfg.stages[name].get("repeat", True) else ""
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
        st["runs"].append({"seed": c.seed, "run": run, "test": m["test"][metric],
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
                ratio = _test_train_ratio(cfg) if cfg.get("folds") else None
                if ratio and len(common) > 1:
                    st["nadeau_bengio_over_" + base] = nadeau_bengio(
                        [ours[k] for k in common], [theirs[k] for k in common], ratio)
    out = {"stages": stages, "seeds": int(cfg.seeds)}
    if cfg.get("folds"):
        out["folds"] = list(cfg.folds)
        out["seeds_per_fold"] = int(cfg.get("seeds_per_fold", 1) or 1)
    return out


def _test_train_ratio(cfg: ml_collections.ConfigDict) -> float | None:
    """n_test / n_train of one cross-validation split: the claim's, else 1 / (K - 1) (None for
    a single fold 1 without a claim ratio)."""
    ratio = (cfg.get("claim") or {}).get("test_train_ratio")
    if ratio:
        return float(ratio)
    k = max(len(cfg.folds), *(int(f) for f in cfg.folds))
    return 1.0 / (k - 1) if k > 1 else None


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
            if k.startswith(("paired_over_", "nadeau_bengio_over_")):
                lines.append(f"{'':<10} {k}: {format_difference(v)}")
    return "\n".join(lines)
