"""Finding a staged workdir's runs and reading what a report needs from them.

A staged workdir (kdjax.train.stages) holds `<stage>/result.json` (a stage run once, e.g. a
teacher) or `<stage>/seed<k>/result.json` / `<stage>/fold<f>/result.json` (a stage repeated
over seeds or cross-validation folds), each run folder with its `metrics.jsonl`. Only train
runs (result.json with "models") are read; cache and inversion stages are listed apart.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Mapping
from typing import Any

# seed<k>, fold<f>, or fold<f>_seed<r> (repeated cross-validation, kdjax.train.stage_list)
_REPEAT = re.compile(r"(seed|fold)(\d+)(?:_seed(\d+))?")
# The fallback for runs whose result.json does not record `converged` (written before early
# stopping landed): a run "converged" when its best validation step lies in the first 3/4 of
# training (the validation metric had stopped improving before the last quarter;
# REPRODUCTION.md §3). The train loop's own rule (kdjax.train.loop.convergence: no improvement
# in the last `patience` validations) wins wherever result.json has it.
CONVERGED_FRACTION = 0.75
FALLBACK_RULE = "3/4 rule"


@dataclasses.dataclass
class Run:
    """One finished run of a stage.

    Attributes:
      stage: the stage name (the folder under the workdir).
      name: "seed<k>", "fold<f>", "fold<f>_seed<r>" (seed r >= 1 of fold f) or "" (a stage run
        once).
      path: the run folder.
      result: the parsed result.json.
      metrics: the rows of metrics.jsonl (`[]` when the file is absent).
    """

    stage: str
    name: str
    path: str
    result: dict[str, Any]
    metrics: list[dict[str, Any]]

    @property
    def repeat(self) -> tuple[str, int] | None:
        """("seed" | "fold", index) of a repeated run (the fold f of "fold<f>_seed<r>" too), None
        for a stage run once."""
        m = _REPEAT.fullmatch(self.name)
        return (m.group(1), int(m.group(2))) if m else None

    def model(self, preferred: str | None = None) -> str:
        """The model reported for this run: `preferred` when given and present, else "student"
        when present, else the first model of result.json (the loop writes deployed models in
        their config order).

        Raises:
          KeyError: `preferred` is not one of the run's models.
        """
        models = list(self.result.get("models", {}))
        if preferred:
            if preferred not in models:
                raise KeyError(f"{self.path}/result.json: no model {preferred!r}; models are {models}")
            return preferred
        return "student" if "student" in models else models[0]

    def test(self, model: str, metric: str) -> float:
        """The test metric of `model`.

        Raises:
          KeyError: result.json has no test value for this model/metric (names the file).
        """
        test = self.result["models"][model].get("test", {})
        if metric not in test:
            raise KeyError(f"{self.path}/result.json: models.{model}.test has no {metric!r}; "
                           f"it has {sorted(k for k, v in test.items() if isinstance(v, (int, float)))}")
        return float(test[metric])

    def curve(self, key: str) -> tuple[list[int], list[float]]:
        """(steps, values) of one metrics.jsonl key, e.g. "train/loss" or "val/student/accuracy"."""
        pts = [(int(r["step"]), float(r[key])) for r in self.metrics if key in r and "step" in r]
        return [p[0] for p in pts], [p[1] for p in pts]

    def convergence(self, model: str, metric: str) -> dict[str, Any]:
        """`{"best_step", "last_step", "converged", "converged_rule"}`; None where the files
        cannot tell.

        result.json's own `best_step` / `last_step` / `converged` (top level or per model) win
        (`converged_rule` "result.json": the train loop's patience rule); otherwise best_step is
        the model's validation-best step (result.json, or the argmax of `val/<model>/<metric>`
        in metrics.jsonl), last_step the last logged step (or `steps`), and converged is the
        fallback `best_step <= CONVERGED_FRACTION * last_step` (`converged_rule` FALLBACK_RULE).
        """
        m = self.result.get("models", {}).get(model, {})
        best = m.get("best_step", self.result.get("best_step"))
        last = m.get("last_step", self.result.get("last_step"))
        steps, vals = self.curve(f"val/{model}/{metric}")
        if (best is None or best < 0) and vals:
            best = steps[max(range(len(vals)), key=lambda i: (vals[i], -steps[i]))]
        if last is None:
            logged = [int(r["step"]) for r in self.metrics if "step" in r]
            last = max(logged) if logged else self.result.get("steps")
        if best is not None and best < 0:  # no validation split: the last model is the one kept
            best = None
        conv = m.get("converged", self.result.get("converged"))
        recorded = "converged" in m or "converged" in self.result  # null: the loop had no validations
        rule = "result.json" if recorded else None
        if not recorded and best is not None and last:
            conv, rule = bool(best <= CONVERGED_FRACTION * last), FALLBACK_RULE
        return {"best_step": best, "last_step": last, "converged": conv, "converged_rule": rule}


def _read_jsonl(path: str) -> list[dict[str, Any]]:
    if not os.path.isfile(path):
        return []
    rows = []
    with open(path) as f:
        for k, line in enumerate(f):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{k + 1}: not a JSON line ({e.msg})") from None
    return rows


def _load(stage: str, name: str, path: str) -> Run:
    with open(os.path.join(path, "result.json")) as f:
        try:
            result = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}/result.json: not JSON ({e.msg})") from None
    return Run(stage, name, path, result, _read_jsonl(os.path.join(path, "metrics.jsonl")))


def _stage_runs(stage: str, sdir: str) -> list[Run]:
    if os.path.isfile(os.path.join(sdir, "result.json")):
        return [_load(stage, "", sdir)]
    subs = [(m.group(1), int(m.group(2)), int(m.group(3) or 0), d) for d in os.listdir(sdir)
            if (m := _REPEAT.fullmatch(d)) and os.path.isfile(os.path.join(sdir, d, "result.json"))]
    return [_load(stage, d, os.path.join(sdir, d)) for *_, d in sorted(subs)]


def find_runs(workdir: str, borrow: Mapping[str, str] | None = None) -> tuple[dict[str, list[Run]], dict[str, list[Run]]]:
    """Every finished run of a staged workdir, by stage (stages and runs in name/index order);
    a workdir that is itself one run (`<workdir>/result.json`) is a stage named after the folder.

    Args:
      workdir: the folder given to `python -m kdjax.main --workdir`, or a `summary.json` that
        kdjax.train.stages wrote (see runs_from_summary).
      borrow: stage -> another folder holding that stage's runs (e.g. a `none` arm that reads
        no teacher, run once and shared by several teachers' workdirs); it replaces the stage.

    Returns:
      (train stages, other stages): stage -> runs; a train run's result.json has "models";
      others (cache / invert stages) are returned apart.

    Raises:
      FileNotFoundError: workdir is not a folder, or holds no finished run.
      ValueError: a result.json or metrics.jsonl that is not JSON (names the file).
    """
    if os.path.isfile(workdir) and workdir.endswith(".json"):
        return runs_from_summary(workdir)
    if not os.path.isdir(workdir):
        raise FileNotFoundError(f"{workdir}: not a folder (expected a staged workdir or its summary.json)")
    train: dict[str, list[Run]] = {}
    other: dict[str, list[Run]] = {}
    if os.path.isfile(os.path.join(workdir, "result.json")):  # one run (a config without stages)
        r = _load(os.path.basename(os.path.abspath(workdir)), "", workdir)
        (train if "models" in r.result else other)[r.stage] = [r]
    for stage in sorted(os.listdir(workdir)):
        sdir = os.path.join(workdir, stage)
        if not os.path.isdir(sdir):
            continue
        if stage in (borrow or {}):
            continue
        for r in _stage_runs(stage, sdir):
            (train if "models" in r.result else other).setdefault(stage, []).append(r)
    for stage, sdir in (borrow or {}).items():
        if not os.path.isdir(sdir):
            raise FileNotFoundError(f"stage {stage}={sdir}: not a folder")
        for r in _stage_runs(stage, sdir):
            (train if "models" in r.result else other).setdefault(stage, []).append(r)
    if not train and not other:
        raise FileNotFoundError(f"{workdir}: no finished run (no <stage>/result.json or "
                                f"<stage>/seed<k>|fold<f>/result.json)")
    return train, other


def runs_from_summary(path: str) -> tuple[dict[str, list[Run]], dict[str, list[Run]]]:
    """The runs of a staged workdir's `summary.json` (kdjax.train.summary.summarize), for results
    kept without their run folders: per run its seed, test and validation metric, best step,
    training time and parameters; no metrics.jsonl, no confusion matrix. Runs are named
    `seed<seed>`, so arms pair by seed as in the summary's own paired lines. A file whose
    top level holds the summary under "summary" (e.g. FRAMI's `<data>_summary.json`) works too.

    Raises:
      ValueError: the file is not JSON or has no "stages" (names the file).
    """
    with open(path) as f:
        try:
            s = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not JSON ({e.msg})") from None
    s = s.get("summary", s) if isinstance(s, dict) else s
    if not isinstance(s, dict) or not isinstance(s.get("stages"), dict):
        raise ValueError(f"{path}: no 'stages' (expected a summary.json of kdjax.train.stages)")
    train: dict[str, list[Run]] = {}
    other: dict[str, list[Run]] = {}
    for stage, st in s["stages"].items():
        if "kind" in st or "model" not in st:
            other[stage] = [Run(stage, "", path, {"summary": x}, []) for x in st.get("runs", [])]
            continue
        m, metric = st["model"], st.get("metric", "accuracy")
        for x in st["runs"]:
            models = {n: {"test": {metric: v}} for n, v in (x.get("models") or {}).items()}
            models[m] = {"test": {metric: x["test"]}, "best_step": x.get("best_step"),
                         # recorded by kdjax.train.summary since early stopping (older summaries: n/a)
                         **{k: x[k] for k in ("last_step", "converged") if x.get(k) is not None},
                         **({"validation": {metric: x["validation"]}} if x.get("validation") is not None else {})}
            models = {m: models.pop(m), **models}  # the stage's model first
            result = {"models": models, "params": {m: st.get("params")}, "train_time_s": x.get("train_time_s")}
            name = x.get("run") or f"seed{x['seed']}"  # the run folder (summaries since folds x seeds)
            train.setdefault(stage, []).append(Run(stage, name, path, result, []))
    return train, other


def confusion(run: Run, model: str) -> list[list[int]] | None:
    """The test confusion matrix `[C, C]` (rows: true class, columns: predicted) or None."""
    cm = run.result["models"][model].get("test", {}).get("confusion_matrix")
    return cm if isinstance(cm, list) and cm and isinstance(cm[0], list) else None


def n_test(run: Run, model: str) -> int | None:
    """Test clips of a run (the confusion matrix's total), None when not recorded."""
    cm = confusion(run, model)
    return int(sum(map(sum, cm))) if cm else None


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
