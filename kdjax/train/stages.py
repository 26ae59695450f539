"""Multi-stage experiments: e.g. train a teacher, then students with and without KD, over seeds.

A staged config has `stages` (name -> a full stage config), `run` (the stage
names to run, in order) and `seeds` (how many seeds each student stage
repeats). Each stage has a `kind` (default "train"):
  train   optimise parameters (kdjax.train.loop.train_and_evaluate)
  invert  optimise inputs against frozen models and write synthetic shards (kdjax.train.invert)
  cache   run frozen models or an external extractor once over a dataset and store arrays by
          clip index (kdjax.train.cache)
Stages refer to each other's outputs: `teachers.<t>.checkpoint = "<stage>:<module>"` loads
module `<module>` of stage `<stage>`, and `{stage:<name>}` in any string of a stage config is
that stage's run folder (the same seed's folder when the referenced stage repeats), e.g.
`data.join.emb = "{stage:cache}/arrays/{split}/emb.npy"` or
`data.train_source.kw.root = "{stage:invert}/synthetic"`. Stage `s` runs in `<workdir>/<s>` (the teacher stage, `repeat=False`)
or `<workdir>/<s>/seed<k>` (`<workdir>/<s>/fold<f>` with `folds`, see `stage_runs`); a stage whose `result.json` exists is skipped, so
re-running the same command after a crash resumes where it stopped.
`summary.json` reports each stage's test metric (mean, std over seeds),
parameter count and training time, and the gain of each stage over its
`baseline` stage.
"""

from __future__ import annotations

import copy
import json
import os
import re
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from kdjax.train.cache import cache_arrays
from kdjax.train.invert import invert_and_save
from kdjax.train.loop import train_and_evaluate
from kdjax.train.stats import format_difference, paired_difference

# The function that runs one stage config of each kind.
KINDS = {"train": train_and_evaluate, "invert": invert_and_save, "cache": cache_arrays}
_STAGE_REF = re.compile(r"\{stage:([A-Za-z0-9_]+)\}")


def run_config(cfg: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Runs one stage config by its `kind` (train / invert / cache); returns its result dict.

    Raises:
      ValueError: an unknown kind.
    """
    kind = cfg.get("kind", "train")
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: expected one of {tuple(KINDS)}")
    return KINDS[kind](cfg, workdir)


def _stage_dir(cfg: ml_collections.ConfigDict, workdir: str, name: str, seed_index: int, where: str) -> str:
    if name not in cfg.stages:
        raise ValueError(f"{where}: refers to stage {name!r}; stages are {list(cfg.stages)}")
    if cfg.stages[name].get("repeat", True):
        return os.path.join(workdir, name, _repeats(cfg)[seed_index][1])
    return os.path.join(workdir, name)


def link_stages(c: ml_collections.ConfigDict, cfg: ml_collections.ConfigDict, workdir: str,
                seed_index: int, stage: str) -> ml_collections.ConfigDict:
    """Resolves the stage references of stage config `c` in place (see module docstring).

    Raises:
      ValueError: a reference to a stage that does not exist (names the field).
    """
    with c.unlocked():  # checkpoint_model may be a new field of a locked config
        for t_name, t in (c.get("teachers", {}) or {}).items():
            ref = str(t.get("checkpoint", ""))
            m = re.fullmatch(r"([A-Za-z0-9_]+):([A-Za-z0-9_]+)", ref)
            if m:
                t.checkpoint = _stage_dir(cfg, workdir, m.group(1), seed_index,
                                          f"stages.{stage}.teachers.{t_name}.checkpoint={ref!r}")
                t.checkpoint_model = m.group(2)

    def expand(v: str, where: str) -> str:
        if "{stage:" not in v:
            return v
        field = f"{where}={v!r}"
        return _STAGE_REF.sub(lambda mm: _stage_dir(cfg, workdir, mm.group(1), seed_index, field), v)

    with c.unlocked():
        _map_strings(c, expand, f"stages.{stage}")
    return c


def _map_strings(node, fn, where: str = "") -> None:
    """Replaces, in place, every string value `v` of a nested config by `fn(v, "<path>.<key>")`."""
    for k in list(node.keys()):
        v = node[k]
        if isinstance(v, str):
            node[k] = fn(v, f"{where}.{k}")
        elif hasattr(v, "keys"):
            _map_strings(v, fn, f"{where}.{k}")


def _repeats(cfg: ml_collections.ConfigDict) -> list[tuple[int, str, str | None]]:
    """(index, run folder name, fold) of each repetition: `folds` when set, else `seeds`."""
    folds = cfg.get("folds")
    if folds:
        return [(k, f"fold{f}", str(f)) for k, f in enumerate(folds)]
    return [(k, f"seed{k}", None) for k in range(int(cfg.seeds))]


def stage_runs(
    cfg: ml_collections.ConfigDict, workdir: str, names: list[str] | None = None
) -> list[tuple[str, int, str, ml_collections.ConfigDict]]:
    """(stage, repetition index, workdir, config) for every run of the staged config, in order.

    Repeated stages (`repeat=True`, the default) run once per seed (`seeds`: seeds
    `stage.seed + k`, folders `seed<k>`) or, when the config has `folds` (e.g. `[1, 2, 3, 4, 5]`
    for ESC-10's official cross-validation), once per fold: folder `fold<f>`, `{fold}` in any
    string of the stage config replaced by `f` (e.g. `data.test_split = "test_fold{fold}"`),
    seed `stage.seed + k`. Every arm uses the same seeds, so arms are paired by seed/fold.
    With folds, a teacher stage must repeat too (a teacher per fold, never trained on its
    fold's test clips).

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
        for k, folder, fold in (_repeats(cfg) if repeat else [(0, "", None)]):
            c = copy.deepcopy(st)
            with c.unlocked():
                c.seed = int(st.seed) + k
                if fold is not None:
                    _map_strings(c, lambda v, _where, fold=fold: v.replace("{fold}", fold))
            wd = os.path.join(workdir, name, folder) if repeat else os.path.join(workdir, name)
            runs.append((name, k, wd, link_stages(c, cfg, workdir, k, name)))
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
        run_config(c, wd)
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
