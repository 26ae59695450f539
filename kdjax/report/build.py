"""The numbers of a report: per-stage summaries, paired comparisons, Holm, verdicts.

`build(workdir, config=..., claim=...)` returns a JSON-serialisable dict that the renderers
(kdjax.report.render) and the figures (kdjax.report.figures) read; it is also written as
`report.json`.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from kdjax.report.runs import FALLBACK_RULE, Run, find_runs, n_test
from kdjax.train import stats

CLAIM_KEYS = ("primary", "metric", "effect", "direction", "source", "secondary", "test_train_ratio", "paper")


def load_config(spec: str) -> dict[str, Any]:
    """A recipe config as a plain dict: `configs/<recipe>.py[:args]` (get_config(args)) or a
    stored `config.json`.

    Raises:
      FileNotFoundError: the file does not exist.
      ValueError: the file is not a config (no get_config, bad JSON), naming it.
    """
    path, _, arg = spec.partition(":") if not spec.endswith(".json") else (spec, "", "")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config {path!r} not found (expected configs/<recipe>.py[:args] or config.json)")
    if path.endswith(".json"):
        with open(path) as f:
            try:
                return json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: not JSON ({e.msg})") from None
    mod_spec = importlib.util.spec_from_file_location("_kdjax_report_config", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    if not hasattr(mod, "get_config"):
        raise ValueError(f"{path}: no get_config() (expected a kdjax config file)")
    cfg = mod.get_config(arg) if arg else mod.get_config()
    return json.loads(cfg.to_json_best_effort()) if hasattr(cfg, "to_json_best_effort") else dict(cfg)


def check_claim(claim: Mapping[str, Any], where: str = "claim") -> dict[str, Any]:
    """Validates a config's `claim` and fills defaults.

    Expected: `dict(primary=dict(arm=..., baseline=...), metric=str, effect=float,
    direction="greater"|"less", source=str, secondary=[dict(arm=..., baseline=...), ...])`;
    optional `test_train_ratio` (n_test / n_train for the Nadeau-Bengio interval) and `paper`
    (the paper's number, as text).

    Raises:
      ValueError: a missing or malformed field (names it).
    """
    c = dict(claim)
    unknown = sorted(set(c) - set(CLAIM_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; expected {list(CLAIM_KEYS)}")
    for pair_where, pair in [("primary", c.get("primary"))] + [
            (f"secondary[{k}]", p) for k, p in enumerate(c.get("secondary") or [])]:
        if not isinstance(pair, Mapping) or not {"arm", "baseline"} <= set(pair):
            raise ValueError(f"{where}.{pair_where}: expected dict(arm=<stage>, baseline=<stage>), got {pair!r}")
    try:
        c["effect"] = float(c["effect"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{where}.effect: expected the smallest effect of interest (a number), "
                         f"got {c.get('effect')!r}") from None
    if c.get("direction") not in ("greater", "less"):
        raise ValueError(f"{where}.direction: expected 'greater' or 'less', got {c.get('direction')!r}")
    c.setdefault("secondary", [])
    c.setdefault("source", "")
    m = str(c.get("metric") or "")
    c["metric"] = m[len("test_"):] if m.startswith("test_") else m  # "test_accuracy" -> "accuracy"
    return c


def _stage_cfg(config: Mapping[str, Any] | None, stage: str) -> Mapping[str, Any]:
    return ((config or {}).get("stages") or {}).get(stage) or {}


def _stage_models(config, stage: str, run: Run) -> list[str]:
    """The deployed models a stage reports: its deployed models (`deploy` not False) found in
    result.json, else every model of result.json (the loop writes only deployed ones; several
    for mutual learning of peers), the config's `eval_model` first."""
    sc = _stage_cfg(config, stage)
    have = list(run.result["models"])
    deployed = [n for n, m in (sc.get("models") or {}).items() if (m or {}).get("deploy", True) is not False and n in have]
    deployed = deployed or have
    if sc.get("eval_model"):  # the selection model first, the other deployed peers after it
        first = run.model(sc["eval_model"])
        return [first] + [n for n in deployed if n != first]
    return deployed


def _metric(run: Run, model: str, wanted: str | None) -> str:
    test = run.result["models"][model].get("test", {})
    if wanted:
        return wanted
    if "accuracy" in test:
        return "accuracy"
    scalars = [k for k, v in test.items() if isinstance(v, (int, float)) and k != "loss"]
    if not scalars:
        raise KeyError(f"{run.path}/result.json: models.{model}.test has no scalar metric")
    return scalars[0]


def summarize_stage(stage: str, runs: Sequence[Run], model: str, metric: str) -> dict[str, Any]:
    """Mean +- std (ddof 1) of the test metric over a stage's runs, with per-run details."""
    rows = []
    for r in runs:
        conv = r.convergence(model, metric)
        val = r.result["models"][model].get("validation", {}).get(metric)
        rows.append({"name": r.name or "-", "test": r.test(model, metric), "validation": val,
                     "train_time_s": r.result.get("train_time_s"), "n_test": n_test(r, model), **conv})
    tests = np.array([x["test"] for x in rows])
    times = [x["train_time_s"] for x in rows if x["train_time_s"] is not None]
    params = runs[0].result.get("params", {}).get(model)
    convs = [x["converged"] for x in rows]
    return {"model": model, "metric": metric, "params": params, "n": len(rows), "runs": rows,
            "mean": float(tests.mean()), "std": float(tests.std(ddof=1)) if len(rows) > 1 else 0.0,
            "train_time_s": float(sum(times)) if times else None,
            "converged": sum(1 for c in convs if c), "converged_known": sum(1 for c in convs if c is not None),
            "converged_fallback": sum(1 for x in rows if x["converged_rule"] == FALLBACK_RULE)}


def _order(config: Mapping[str, Any] | None, names: list[str]) -> list[str]:
    """Stages in the config's `run` order (then its stages in their order), then the others."""
    first = [s for s in str((config or {}).get("run") or "").split(",") if s]
    first += list((config or {}).get("stages") or {})
    seen = [s for s in dict.fromkeys(first) if s in names]
    return seen + [s for s in names if s not in seen]


def _pairs(config, claim, compare: Iterable[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(arm, baseline, role) of every comparison: the claim's primary, its secondaries, every
    stage's `baseline` in the config, and explicit `compare` pairs (secondary)."""
    out: list[tuple[str, str, str]] = []
    if claim:
        out.append((claim["primary"]["arm"], claim["primary"]["baseline"], "primary"))
        out += [(p["arm"], p["baseline"], "secondary") for p in claim["secondary"]]
    for name, sc in ((config or {}).get("stages") or {}).items():
        if (sc or {}).get("baseline"):
            out.append((name, sc["baseline"], "secondary"))
    out += [(a, b, "secondary") for a, b in compare]
    seen, uniq = set(), []
    for a, b, role in out:
        if (a, b) not in seen:
            seen.add((a, b))
            uniq.append((a, b, role))
    return uniq


def compare_arms(arm: Sequence[Run], base: Sequence[Run], model: str, metric: str,
                 test_train_ratio: float | None = None) -> dict[str, Any]:
    """Paired comparison `arm - baseline` over the runs both arms share (by seed/fold name).

    Returns `{"runs", "plain": paired_difference, "nadeau_bengio": ... | None}`: the corrected
    interval when the runs are cross-validation folds, with `test_train_ratio` or, by default,
    `1 / (K - 1)` for K folds (the test fold against the other K - 1; a validation part held
    out of them makes the true ratio a little larger, so the default under-corrects slightly).
    With several seeds per fold (`fold<f>_seed<r>`), n counts every paired (fold, seed) run and
    K the distinct folds (Bouckaert & Frank 2004's corrected repeated k-fold test, df n - 1).

    Raises:
      ValueError: no run in common.
    """
    a = {r.name: r for r in arm}
    b = {r.name: r for r in base}
    common = [n for n in a if n in b]
    if not common:
        raise ValueError(f"no run in common between {arm[0].stage} {sorted(a)} and {base[0].stage} {sorted(b)}")
    bmodel = model if model in b[common[0]].result["models"] else b[common[0]].model()
    xa = [a[n].test(model, metric) for n in common]
    xb = [b[n].test(bmodel, metric) for n in common]
    out: dict[str, Any] = {"runs": common, "arm_values": xa, "baseline_values": xb,
                           "plain": stats.paired_difference(xa, xb), "nadeau_bengio": None}
    folds = [a[n].repeat for n in common]
    if len(common) > 1 and all(f and f[0] == "fold" for f in folds):
        k = max(len({f[1] for f in folds}), max(f[1] for f in folds))  # K folds, not n runs
        ratio = test_train_ratio or (1.0 / (k - 1) if k > 1 else None)
        if ratio:  # one fold repeated over seeds without a claim ratio: no K to take it from
            out["nadeau_bengio"] = stats.nadeau_bengio(xa, xb, ratio)
    return out


def build(workdir: str, *, config: Mapping[str, Any] | None = None, claim: Mapping[str, Any] | None = None,
          compare: Iterable[tuple[str, str]] = (), metric: str | None = None, title: str | None = None,
          borrow: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Everything a report shows, from a staged workdir's result.json / metrics.jsonl files.

    Args:
      workdir: the staged workdir (`<stage>/result.json`, `<stage>/seed<k>|fold<f>/...`).
      config: the recipe config as a dict (its `stages.<s>.baseline`, `eval_model`, `eval_metric`
        and `claim` are used); `<workdir>/config.json` is read when not given.
      claim: overrides `config["claim"]` (see `check_claim`).
      compare: extra (arm, baseline) stage pairs.
      metric: the test metric (default: the claim's, else each stage's `eval_metric`, else accuracy).
      borrow: stage -> a folder with that stage's runs, read instead of the workdir's (e.g. a
        shared no-teacher arm); the report names it.

    Returns:
      `{"workdir", "title", "stages", "other_stages", "comparisons", "claim", "verdict"}`.

    Raises:
      FileNotFoundError: no workdir / no finished run. ValueError: a bad claim, or a comparison
      naming a stage with no finished train run (names it and the stages there).
    """
    if config is None and os.path.isfile(os.path.join(workdir, "config.json")):
        config = load_config(os.path.join(workdir, "config.json"))
    if claim is None and config is not None and config.get("claim"):
        claim = config["claim"]
    claim = check_claim(claim) if claim else None
    metric = metric or (claim or {}).get("metric")
    train, other = find_runs(workdir, borrow)
    train = {k: train[k] for k in _order(config, list(train))}
    stages: dict[str, Any] = {}
    models: dict[str, list[str]] = {}
    for name, runs in train.items():
        models[name] = _stage_models(config, name, runs[0])
        for k, model in enumerate(models[name]):
            m = metric or _stage_cfg(config, name).get("eval_metric") or _metric(runs[0], model, None)
            if m not in runs[0].result["models"][model].get("test", {}):
                m = _metric(runs[0], model, None)  # e.g. a teacher stage scored on another metric
            # a stage with several deployed models (peers): one row per model, the first under its name
            stages[name if k == 0 else f"{name}/{model}"] = {"stage": name, **summarize_stage(name, runs, model, m)}
    comps, missing = [], []
    explicit = set(compare := list(compare))
    planned = {s for s in str((config or {}).get("run") or "").split(",") if s}
    for a, b, role in _pairs(config, claim, compare):
        absent = [s for s in (a, b) if s not in train]
        if absent and (a, b) in explicit:
            raise ValueError(f"comparison {a} - {b}: no finished train run of stage {absent[0]!r} in "
                             f"{workdir}; stages there: {sorted(train)}")
        if a in absent and planned and a not in planned and role == "secondary":
            continue  # a stage the config defines but does not run (e.g. an optional arm)
        if absent:  # e.g. `stage=kd` run alone: the report lists what could not be compared yet
            missing.append({"arm": a, "baseline": b, "role": role, "absent": absent})
            continue
        for model in [m for m in models[a] if m in models[b]] or models[a][:1]:
            st = stages[a] if model == models[a][0] else stages[f"{a}/{model}"]
            c = compare_arms(train[a], train[b], model, st["metric"], (claim or {}).get("test_train_ratio"))
            multi = len(models[a]) > 1
            comps.append({"arm": a, "baseline": b, "role": role, "metric": st["metric"],
                          "model": model, "label": f"{a} - {b}" + (f" [{model}]" if multi else ""), **c})
    sec = [c for c in comps if c["role"] == "secondary"]
    adj = stats.holm([judged(c)["p_value"] for c in sec])
    for c, p in zip(sec, adj, strict=True):
        c["holm_p"] = p
    verdicts = []
    for c in (comps if claim else []):
        if c["role"] != "primary":
            continue
        iv = judged(c)
        both = [st for st in stages.values() if st["stage"] in (c["arm"], c["baseline"])]
        conv = all(st["converged"] == st["n"] for st in both)
        known = all(st["converged_known"] == st["n"] for st in both)
        fallback = any(st.get("converged_fallback") for st in both)
        v = stats.verdict(iv["ci95_low"], iv["ci95_high"], claim["effect"], claim["direction"], conv)
        ratio = (c["nadeau_bengio"] or {}).get("test_train_ratio", 0.0)
        need = (stats.runs_to_decide(c["plain"]["std"], claim["effect"], c["plain"]["mean"], claim["direction"], ratio)
                if v == "inconclusive" and c["plain"]["n"] > 1 else None)
        verdicts.append({"label": c["label"], "verdict": v, "interval": "nadeau_bengio" if c["nadeau_bengio"] else "plain",
                         "converged": conv, "convergence_known": known, "convergence_fallback": fallback,
                         "runs_to_decide": need,
                         "more_runs": (max(need - c["plain"]["n"], 0) if need else None)})
        c["verdict"] = v
    return {"workdir": workdir, "title": title or os.path.basename(os.path.abspath(workdir)),
            "stages": stages, "other_stages": {k: len(v) for k, v in other.items()},
            "comparisons": comps, "missing_comparisons": missing, "claim": claim, "borrowed": dict(borrow or {}),
            "verdict": verdicts[0] if verdicts else None, "verdicts": verdicts}


def judged(c: Mapping[str, Any]) -> dict[str, Any]:
    """The interval a comparison is judged by: Nadeau-Bengio for folds, else the plain one."""
    return c["nadeau_bengio"] or c["plain"]


def finite_or_none(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None
