"""Second-round EAsT table (issue #26) from the committed per-run files; no number is typed.

Reads `configs/results/east/raw2/<teacher>/<stage>/fold<f>/` (result.json, metrics.jsonl; copied
from the workdirs by `configs/results/collect_runs.sh`) through `kdjax.report` (`find_runs`,
`build`, `compare_arms`) and applies the README's "Plan (second round; issue 26)":
  primary    `dcor` - `none`, test accuracy, paired by ESC-10 fold: the Nadeau-Bengio corrected
             95% interval (test/train ratio `claim.test_train_ratio`, 80 / 260) decides, the
             plain t interval beside it; verdict against the smallest effect of interest
             (`claim.effect`, +1 point) by kdjax.report's rules (`kdjax.train.stats.verdict`: a
             "refuted" needs every run of the pair converged), given only with all the folds
             paired (fewer: "n = k, incomplete");
  secondary  `kd` - `none`, `dcor_kd` - `none` (the claim's), NB intervals, Holm-adjusted
             p-values (kdjax.report: over the secondaries with finished runs), no verdict;
  kept       `dcor` - `probe` (the paper's headline, outside the Holm family): plain and NB
             intervals, no verdict;
  arms       per stage: test accuracy mean +- SD and per fold, converged runs (result.json
             `converged`), best / last step against the ceiling (`num_steps`), training time per
             run and per step; the cache's extraction time; which planned runs are missing.
The `none` arm reads no teacher and is run once in the BirdNET workdir (`SHARED_NONE`); the
musicnn table borrows it. The config of the runs is `configs/east.py` at the Plan's commit
(69c417b; the file is unchanged since): written once to `round2/config_<teacher>.json` and
read from there afterwards, as round one reads its `report/<teacher>/config.json`, so a later
edit of the recipe never rewrites these numbers; every run's ceiling and patience are checked
against it. Partial trees are fine: what is finished is shown, the rest listed as missing.

Usage (repository root): `python -m configs.results.east.round2.make_table birdnet [musicnn]`
(`--effect E` replaces `claim.effect`). Writes `round2/tables_<teacher>.json` and the markdown
between the README's `<!-- kdjax.report:begin round2_<teacher> -->` markers (also printed).

Raises:
  ValueError: a run whose ceiling or early-stopping patience is not the stored config's.
"""

from __future__ import annotations

import functools
import json
import pathlib

from configs.results.east.make_table import CONFIG, NAMES
from configs.results.round2 import table_main
from kdjax.report import load_config
from kdjax.report.build import build as report_build
from kdjax.report.build import check_claim, compare_arms
from kdjax.report.runs import find_runs
from kdjax.train.stats import format_interval, mean_std

HERE = pathlib.Path(__file__).resolve().parent
RAW2 = HERE.parent / "raw2"
REPO = HERE.parents[3]
SHARED_NONE = "birdnet"  # the workdir that runs the teacher-free `none` arm for every teacher
KEPT = ("dcor", "probe")  # the paper's headline: the EAsT student against its teacher's probe
TRAIN = ("none", "dcor", "probe", "kd", "dcor_kd")  # table order of the train stages


def run_config(teacher: str, here: pathlib.Path = HERE) -> dict:
    """The config the teacher's round-2 runs were made with, as a dict: `here/config_<teacher>.json`
    when stored, else `configs/east.py` with the round-1 arguments of `teacher` (`CONFIG`), which
    is then stored there (module docstring).

    Raises:
      FileNotFoundError, ValueError: the stored file or configs/east.py cannot be read
        (`kdjax.report.load_config`).
    """
    stored = pathlib.Path(here) / f"config_{teacher}.json"
    if stored.is_file():
        return load_config(str(stored))
    spec = CONFIG.get(teacher, f"configs/east.py:variant=local,teacher={teacher}")
    cfg = load_config(str(REPO / spec))
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_text(json.dumps(cfg, indent=1) + "\n")
    return cfg


def _rel(p: pathlib.Path) -> str:
    p = pathlib.Path(p).resolve()
    return str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p)


def _pts(d: dict, key: str = "mean") -> str:
    return f"{100 * d[key]:+.2f}"


def _iv(d: dict | None) -> str:
    return "-" if d is None else format_interval(d, scale=100, digits=2)[len(_pts(d)) + 1:]


def _comparison(c: dict, folds: int, stages: dict) -> dict:
    """The json-able numbers of one kdjax.report comparison dict `c` (intervals only for >= 2
    paired folds), with the converged runs of its pairs and whether it is complete."""
    n = len(c["runs"])
    conv = sum(1 for s in (c["arm"], c["baseline"]) for r in stages[s]["runs"]
               if r["name"] in c["runs"] and r["converged"])
    return dict(arm=c["arm"], baseline=c["baseline"], n=n, folds=c["runs"], complete=n >= folds,
                arm_values=c["arm_values"], baseline_values=c["baseline_values"],
                diff=c["plain"]["mean"], plain=c["plain"] if n > 1 else None,
                nadeau_bengio=c["nadeau_bengio"], holm_p=c.get("holm_p"),
                converged_runs=conv, runs=2 * n)


def _row(c: dict, cells: list[str]) -> str:
    """`| arm - base | n | mean | plain CI | NB CI | NB half-width | NB p | *cells |`."""
    nb = c["nadeau_bengio"]
    if c["plain"] is None:
        head = [f"{c['arm']} - {c['baseline']}", str(c["n"]), f"{100 * c['diff']:+.2f} (1 fold)", "-", "-", "-", "-"]
    else:
        head = [f"{c['arm']} - {c['baseline']}", str(c["n"]), _pts(c["plain"]), _iv(c["plain"]), _iv(nb),
                f"{100 * nb['half_width']:.2f}", f"{nb['p_value']:.3f}"]
    return "| " + " | ".join(head + cells) + " |"


COMP_HEAD = ("| comparison | n | mean | plain 95% t interval | Nadeau-Bengio 95% interval | NB half-width | NB p |")


def build(teacher: str, effect: float | None = None, raw: pathlib.Path = RAW2,
          here: pathlib.Path = HERE) -> tuple[str, dict]:
    """(markdown, numbers) of one teacher's second-round table from `raw/<teacher>` (the `none`
    arm from `raw/SHARED_NONE/none` for the other teachers); module docstring. `effect`: the
    smallest effect of interest (None: the stored config's `claim.effect`). Accuracies in the
    numbers are fractions, the markdown shows percent / points.

    Raises:
      ValueError: a run's `steps` or early-stopping patience differs from the stored config's.
    """
    raw, here = pathlib.Path(raw), pathlib.Path(here)
    cfg = run_config(teacher, here)
    claim = check_claim(cfg["claim"])
    if effect is not None:
        claim["effect"] = float(effect)
    ratio = float(claim["test_train_ratio"])
    folds = [f"fold{f}" for f in cfg["folds"]]
    planned = [s for s in str(cfg["run"]).split(",") if s]
    w = raw / teacher
    shared = raw / SHARED_NONE / "none"
    borrow = {"none": str(shared)} if teacher != SHARED_NONE and shared.is_dir() else None
    lines = [f"### {NAMES.get(teacher, teacher)}, second round (issue #26): test accuracy, ESC-10, "
             f"{len(folds)} official folds", ""]
    nums: dict = dict(teacher=teacher, effect=claim["effect"], test_train_ratio=ratio,
                      config=_rel(here / f"config_{teacher}.json"), planned_stages=planned, folds=folds)
    if not w.is_dir():
        nums.update(finished_runs=0, missing={s: folds for s in planned})
        return "\n".join(lines + [f"No run of this teacher collected yet (`{_rel(w)}` missing)."]) + "\n", nums
    train, other = find_runs(str(w), borrow)
    for s, runs in train.items():
        sc = cfg["stages"][s]
        for r in runs:
            pat = (r.result.get("early_stopping") or {}).get("patience")
            if r.result.get("steps") != sc["num_steps"] or pat != sc["early_stopping"]["patience"]:
                raise ValueError(f"{r.path}/result.json: steps {r.result.get('steps')}, patience {pat}; the "
                                 f"stored config ({nums['config']}) has {sc['num_steps']}, "
                                 f"{sc['early_stopping']['patience']}: not the config of these runs")
    rep = report_build(str(w), config=cfg, claim=claim, borrow=borrow)
    st = rep["stages"]
    comps = {(c["arm"], c["baseline"]): c for c in rep["comparisons"]}
    src = f"Runs read from `{_rel(w)}`" + (f"; `none` from `{_rel(shared)}` (shared: the arm reads no "
                                            "teacher)" if borrow else "")
    lines += [src + f". Config: `{nums['config']}` (`claim`: smallest effect of interest "
              f"+{100 * claim['effect']:g} point, Nadeau-Bengio test/train ratio {ratio:.4f}).", ""]

    # primary
    pa, pb = claim["primary"]["arm"], claim["primary"]["baseline"]
    lines += [f"**Primary: {pa} - {pb}** (points; the Nadeau-Bengio interval decides; the plain t interval "
              "assumes independent runs, which folds sharing 3/4 of their training data are not):", "",
              COMP_HEAD + " smallest effect | converged runs | verdict |", "|---|---|---|---|---|---|---|---|---|---|"]
    prim = None
    if (pa, pb) in comps:
        prim = _comparison(comps[(pa, pb)], len(folds), st)
        v = rep["verdict"]
        prim["verdict"] = v["verdict"] if prim["complete"] else None
        prim["runs_to_decide"] = v["runs_to_decide"] if prim["complete"] else None
        note = (f"**{v['verdict']}**" if prim["complete"] else f"none: n = {prim['n']}, incomplete")
        lines.append(_row(prim, [f"+{100 * claim['effect']:g}", f"{prim['converged_runs']}/{prim['runs']}", note]))
        if prim["verdict"] == "inconclusive":
            lines += ["", f"Inconclusive: about {v['runs_to_decide']} paired folds would decide it if the paired "
                      "SD and mean stay as observed." if v["runs_to_decide"] else
                      "Inconclusive: at the observed paired SD no number of folds would decide it (the "
                      f"corrected half-width cannot fall below 1.96 x SD x sqrt({ratio:.4f}))."]
    else:
        lines.append(f"| {pa} - {pb} | 0 | no paired fold yet | - | - | - | - | +{100 * claim['effect']:g} | - | - |")
    nums["primary"] = prim

    # secondaries (Holm by kdjax.report over those with finished runs) and the kept comparison
    sec_pairs = [(p["arm"], p["baseline"]) for p in claim["secondary"]]
    have = [p for p in sec_pairs if p in comps]
    lines += ["", f"**Secondary** (Holm over the {len(have)} of {len(sec_pairs)} with finished runs; "
              "no verdict):", "", COMP_HEAD + " Holm p | converged runs | status |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    nums["secondary"] = {}
    for a, b in sec_pairs:
        if (a, b) not in comps:
            lines.append(f"| {a} - {b} | 0 | no paired fold yet | - | - | - | - | - | - | - |")
            continue
        c = _comparison(comps[(a, b)], len(folds), st)
        hp = "-" if c["plain"] is None else f"{c['holm_p']:.3f}"
        lines.append(_row(c, [hp, f"{c['converged_runs']}/{c['runs']}",
                              "complete" if c["complete"] else f"n = {c['n']}, incomplete"]))
        nums["secondary"][f"{a}-{b}"] = c
    a, b = KEPT
    lines += ["", f"**Kept: {a} - {b}** (the student against its teacher's linear probe, the paper's headline; "
              "outside the Holm family, no verdict):", "", COMP_HEAD + " status |",
              "|---|---|---|---|---|---|---|---|"]
    kept = None
    if a in train and b in train and {r.name for r in train[a]} & {r.name for r in train[b]}:
        ck = compare_arms(train[a], train[b], "student", "accuracy", ratio)
        kept = _comparison(dict(ck, arm=a, baseline=b), len(folds), st)
        lines.append(_row(kept, ["complete" if kept["complete"] else f"n = {kept['n']}, incomplete"]))
    else:
        lines.append(f"| {a} - {b} | 0 | no paired fold yet | - | - | - | - | - |")
    nums["kept"] = kept

    # arms
    lines += ["", "**Arms** (test accuracy of the best-validation parameters, %; convergence: result.json "
              "`converged`, early stopping after `patience` validations without improvement):", "",
              "| stage | runs | test, mean +- SD | per fold | converged | best / last step (ceiling) | "
              "at ceiling | train time per run (s), mean [min, max] | s per step |",
              "|---|---|---|---|---|---|---|---|---|"]
    nums["arms"], under = {}, []
    for s in [s for s in TRAIN if s in st]:
        x = st[s]
        rows = x["runs"]
        ceil = cfg["stages"][s]["num_steps"]
        at_ceiling = sum(1 for r in rows if r["last_step"] >= ceil)
        times = [r["train_time_s"] for r in rows]
        per_step = [r["train_time_s"] / r["last_step"] for r in rows]
        if at_ceiling > x["n"] / 2 or x["converged"] <= x["n"] / 2:
            under.append(s)
        lines.append(
            f"| {s}{' (shared)' if borrow and s in borrow else ''} | {x['n']} | "
            f"{mean_std([r['test'] for r in rows], scale=100, digits=2)} | "
            + ", ".join(f"{r['name']}: {100 * r['test']:.2f}" for r in rows)
            + f" | {x['converged']}/{x['n']} | "
            + ", ".join(f"{r['best_step']}/{r['last_step']}" for r in rows)
            + f" ({ceil}) | {at_ceiling}/{x['n']} | {sum(times) / len(times):.0f} [{min(times):.0f}, "
            f"{max(times):.0f}] | {sum(per_step) / len(per_step):.2f} |")
        nums["arms"][s] = dict(n=x["n"], mean=x["mean"], std=x["std"], converged=x["converged"],
                               at_ceiling=at_ceiling, ceiling=ceil,
                               runs={r["name"]: {k: r[k] for k in ("test", "validation", "best_step", "last_step",
                                                                   "converged", "train_time_s")} for r in rows})
    cache = {r.name: r.result["summary"] for r in other.get("cache", [])}
    if cache:
        n_clips = sum(c["num_clips"] for c in cache.values())
        t = [c["time_s"] for c in cache.values()]
        lines += ["", f"Cache: {len(cache)} folds, {n_clips} clip extractions in {sum(t):.0f} s "
                  f"({n_clips / sum(t):.2f} clips/s; per fold {min(t):.0f}-{max(t):.0f} s)."]
    nums["cache"] = {k: dict(num_clips=c["num_clips"], time_s=c["time_s"]) for k, c in cache.items()}
    nums["under_trained"] = under
    if under:
        lines += ["", f"**Under-trained**: most runs of {', '.join(under)} hit the ceiling or did not converge, "
                  "so no verdict here can be \"refuted\"."]

    # what is missing
    have_runs = {s: {r.name for r in train.get(s, [])} for s in planned}
    have_runs["cache"] = set(cache)
    missing = {s: [f for f in folds if f not in have_runs[s]] for s in planned}
    missing = {s: m for s, m in missing.items() if m}
    done = sum(len(have_runs[s] & set(folds)) for s in planned if not (borrow and s in borrow))
    total = len(folds) * len([s for s in planned if not (borrow and s in borrow)])
    nums.update(missing=missing, finished_runs=done, planned_runs=total)
    lines += ["", f"Finished: {done} of {total} planned runs of this teacher"
              + (" (the shared `none` arm counted in the BirdNET table)" if borrow else "") + "; "
              + ("missing: " + "; ".join(f"{s} {', '.join(m)}" for s, m in missing.items()) + "."
                 if missing else "none missing.")]
    return "\n".join(lines) + "\n", nums


def main(argv: list[str] | None = None, raw: pathlib.Path = RAW2, here: pathlib.Path = HERE) -> None:
    """The command line (configs/results/round2.table_main); `raw`, `here`: the raw2 tree and the
    folder of the config snapshots and tables_<teacher>.json (the README is `here/../README.md`
    unless `--readme` names another)."""
    table_main(__doc__, pathlib.Path(here), functools.partial(build, raw=raw, here=here), effect=None, argv=argv)


if __name__ == "__main__":
    main()
