"""Second-round FRAMI table (issue #27) from the committed per-run files; no number is typed.

Reads `configs/results/frami/round2/selection.json` and `round2/<data>/...` (written by `run.py`:
`teacher/result.json`, `<stage>/seed<k>/result.json`) and applies the README's "Plan (second
round)":
  teacher    its validation and test accuracy (best step);
  selection  the w_tv and student_mixup selection on FSDD validation (seeds 100, 101): per
             setting the acceptance of each set, the di students' best validation accuracies, the
             criterion (their mean), eligibility and the choice; test numbers not read;
  primary    `frami` - `di`, test accuracy, paired 95% t interval over the seeds finished in both
             (`kdjax.train.stats.paired_difference`), verdict against the smallest effect of
             interest (+0.02; `verdict`, a "refuted" needs most runs of the pair converged) and
             the paired seeds that would decide an inconclusive one (`runs_to_decide`); no verdict
             at all when a set of the data set was rejected (the Plan: inversions not converged);
  secondary  `cont` - `di`, `hidden` - `di`, `adv` - `di`, `frami` - `cont`: intervals and
             Holm-adjusted p-values over those with >= 2 paired seeds (`holm`), no verdict;
  arms       per arm (the five student arms and the upper reference `real`): test accuracy mean
             +- std and per seed, converged runs (result.json `models.student.converged`), best /
             last step;
  inversions per set (inv_di, inv_frami, inv_adv x seed): the teacher's accuracy on its targets
             (the acceptance check), accepted, time, samples/s (result.json `summary`,
             kdjax.train.invert).
Partial trees are fine (fewer seeds: what is finished is shown; a pair with one seed shows its
difference only). `<data>` may carry the failure rule's suffix, e.g. `fsdd_inv2000`.

Usage (repository root): `python -m configs.results.frami.round2.make_table fsdd [sc12 esc10]`
(`--effect E` replaces the smallest effect of interest). Writes `round2/tables_<data>.json` and the
markdown between the README's `<!-- kdjax.report:begin round2_<data> -->` markers (also printed).
"""

from __future__ import annotations

import json
import pathlib

from configs.results.round2 import table_main, teacher_numbers
from kdjax.train.stats import (
    format_interval,
    holm,
    mean_std,
    paired_difference,
    runs_to_decide,
    verdict,
)

HERE = pathlib.Path(__file__).resolve().parent
EFFECT = 0.02  # smallest effect of interest (accuracy), the Plan's
SEEDS = 5
ARMS = ("di", "cont", "hidden", "frami", "adv", "real")
INVERSIONS = ("inv_di", "inv_frami", "inv_adv")
PLANNED = ARMS + INVERSIONS  # 9 runs per seed (run.py TABLE_ORDER)
PRIMARY = ("frami", "di")
SECONDARY = (("cont", "di"), ("hidden", "di"), ("adv", "di"), ("frami", "cont"))


def _seed_runs(w: pathlib.Path, stage: str) -> dict[int, dict]:
    """seed -> result.json of one stage's finished runs (none: {})."""
    out = {}
    for res in (w / stage).glob("seed*/result.json"):
        out[int(res.parent.name[4:])] = json.loads(res.read_text())
    return dict(sorted(out.items()))


def arm_numbers(runs: dict[int, dict]) -> dict:
    """Per-seed numbers of a student arm: `{seeds, test, validation, converged (seeds),
    best_step, last_step}` (accuracies as fractions; keys of the dicts: seeds)."""
    m = {k: r["models"]["student"] for k, r in runs.items()}
    return dict(seeds=list(m), test={k: m[k]["test"]["accuracy"] for k in m},
                validation={k: m[k]["validation"]["accuracy"] for k in m if "validation" in m[k]},
                converged=[k for k in m if m[k].get("converged")],
                best_step={k: int(m[k]["best_step"]) for k in m},
                last_step={k: int(runs[k].get("last_step", -1)) for k in m})


def pair(arms: dict[str, dict], arm: str, base: str) -> dict:
    """`arm` - `base` over the seeds finished in both: `{arm, baseline, seeds, diff (one seed),
    stats (>= 2 seeds: paired_difference), converged, runs}`."""
    a, b = arms[arm], arms[base]
    seeds = [k for k in a["seeds"] if k in b["test"]]
    out = dict(arm=arm, baseline=base, seeds=seeds, stats=None, diff=None,
               converged=sum(k in arms[s]["converged"] for s in (arm, base) for k in seeds),
               runs=2 * len(seeds))
    x, y = [a["test"][k] for k in seeds], [b["test"][k] for k in seeds]
    if len(seeds) >= 2:
        out["stats"] = paired_difference(x, y)
    elif seeds:
        out["diff"] = x[0] - y[0]
    return out


def _selection_md(sel: dict) -> list[str]:
    lines = [f"**Selection on validation** (FSDD, `di` arm, seeds {', '.join(map(str, sel['seeds']))}, "
             f"{sel['inv_steps']} inversion steps; criterion: {sel['criterion']}).", "",
             "| w_tv | student_mixup | acceptance per set | best validation per seed | mean | eligible |",
             "|---|---|---|---|---|---|"]
    rows = list(sel["w_tv_runs"].values()) + list(sel.get("mixup_runs", {}).values())
    for r in rows:
        inv = r["inversions"]
        acc = (", ".join(f"{a['teacher_accuracy_on_targets']:.4f}" for a in inv.values())
               if isinstance(inv, dict) else "the same sets")
        val = ", ".join(f"{v['validation']:.4f}" for v in r["students"].values()) or "-"
        crit = f"{r['criterion']:.4f}" if r.get("criterion") is not None else "-"
        lines.append(f"| {r['w_tv']:g} | {r['student_mixup']:g} | {acc} | {val} | {crit} | "
                     f"{'yes' if r['eligible'] else 'no (rejected set)'} |")
    c = sel["chosen"]
    return lines + ["", f"Chosen: w_tv = {c['w_tv']:g}, student_mixup = {c['student_mixup']:g}.", ""]


def build(data: str, effect: float = EFFECT, root: pathlib.Path = HERE) -> tuple[str, dict]:
    """(markdown, numbers) of one data set's second-round table from `root/<data>` and
    `root/selection.json` (module docstring). `effect`: the smallest effect of interest."""
    root = pathlib.Path(root)
    w = root / data
    lines = [f"### {data}, second round (issue #27): student test accuracy, stats_pool_net teacher", ""]
    nums: dict = dict(data=data, effect=effect)
    tm = teacher_numbers(w / "teacher")
    if tm is not None:
        nums["teacher"] = tm
        lines += [f"Teacher (`stats_pool_net`): validation {tm['validation']:.4f}, test "
                  f"{tm['test']:.4f} (best step {tm['best_step']}); the paper's teacher "
                  "accuracy is unknown to us.", ""]
    sel_path = root / "selection.json"
    if not sel_path.is_file():
        return "\n".join(lines + ["Selection not finished: no table yet."]) + "\n", nums
    sel = json.loads(sel_path.read_text())
    nums["selection"] = sel
    lines += _selection_md(sel)

    inv = {st: {k: r["summary"] for k, r in _seed_runs(w, st).items()} for st in INVERSIONS}
    rejected = [f"{st} seed {k}" for st in INVERSIONS for k, s in inv[st].items() if not s.get("accepted")]
    runs = {a: _seed_runs(w, a) for a in ARMS}
    arms = {a: arm_numbers(r) for a, r in runs.items()}

    # primary
    p = pair(arms, *PRIMARY)
    q = p["stats"]
    row = dict(p, effect=effect, verdict=None, runs_to_decide=None)
    head = ["**Primary: FRAMI - DeepInversion** (`frami` - `di`, test accuracy, paired 95% t interval):", "",
            "| n | mean [95% CI] | half-width | p | smallest effect | converged runs | verdict |",
            "|---|---|---|---|---|---|---|"]
    if q is None:
        one = f"{p['diff']:+.4f} (1 seed)" if p["diff"] is not None else "no paired seed yet"
        head.append(f"| {len(p['seeds'])} | {one} | - | - | +{effect:g} | {p['converged']}/{p['runs']} | - |")
    else:
        if rejected:
            v, note = None, f"none: inversions not converged (rejected: {', '.join(rejected)})"
        else:
            v = verdict(q["ci95_low"], q["ci95_high"], effect, "greater", converged=p["converged"] > p["runs"] / 2)
            note = f"**{v}**"
            if v == "inconclusive":
                row["runs_to_decide"] = runs_to_decide(q["std"], effect, mean=q["mean"])
                if row["runs_to_decide"]:
                    note += f"; about {row['runs_to_decide']} paired seeds would decide it"
        row["verdict"] = v
        head.append(f"| {q['n']} | {format_interval(q)} | {q['half_width']:.4f} | {q['p_value']:.3f} | "
                    f"+{effect:g} | {p['converged']}/{p['runs']} | {note} |")
    nums["primary"] = row
    lines += head + [""]

    # secondaries
    pairs = {f"{a}-{b}": pair(arms, a, b) for a, b in SECONDARY}
    tested = [k for k, s in pairs.items() if s["stats"] is not None]
    adj = dict(zip(tested, holm([pairs[k]["stats"]["p_value"] for k in tested]), strict=True))
    lines += [f"**Secondary** (Holm over the {len(tested)} of {len(SECONDARY)} comparisons with >= 2 "
              "paired seeds; no verdict):", "",
              "| comparison | n | mean [95% CI] | p | Holm p | converged runs |", "|---|---|---|---|---|---|"]
    nums["secondary"] = {}
    for k, s in pairs.items():
        q = s["stats"]
        if q is None:
            one = f"{s['diff']:+.4f} (1 seed)" if s["diff"] is not None else "no paired seed yet"
            lines.append(f"| {s['arm']} - {s['baseline']} | {len(s['seeds'])} | {one} | - | - | "
                         f"{s['converged']}/{s['runs']} |")
        else:
            lines.append(f"| {s['arm']} - {s['baseline']} | {q['n']} | {format_interval(q)} | "
                         f"{q['p_value']:.3f} | {adj[k]:.3f} | {s['converged']}/{s['runs']} |")
        nums["secondary"][k] = dict(s, holm_p=adj.get(k))

    # arms
    lines += ["", "**Arms** (test accuracy of the best-by-validation parameters; `real`: upper reference, "
              "not tested):", "",
              "| arm | runs | test, mean +- std | per seed | converged | best / last step |",
              "|---|---|---|---|---|---|"]
    nums["arms"] = {}
    for a in ARMS:
        x = arms[a]
        v = [x["test"][k] for k in x["seeds"]]
        per = ", ".join(f"{k}: {x['test'][k]:.4f}" for k in x["seeds"]) or "-"
        steps = ", ".join(f"{x['best_step'][k]}/{x['last_step'][k]}" for k in x["seeds"]) or "-"
        lines.append(f"| {a} | {len(v)} | {mean_std(v)} | {per} | {len(x['converged'])}/{len(v)} | {steps} |")
        nums["arms"][a] = dict(x, mean_std=mean_std(v))

    # inversion sets
    lines += ["", "**Inversion sets** (acceptance: the teacher's accuracy on its own targets, >= 0.95 "
              "to be used; time and samples/s of the run, load in the driver's log):", "",
              "| set | seed | samples | accuracy on targets | accepted | time (s) | samples/s |",
              "|---|---|---|---|---|---|---|"]
    nums["inversions"] = {}
    for st in INVERSIONS:
        for k, s in inv[st].items():
            lines.append(f"| {st} | {k} | {s.get('num_samples')} | {s['teacher_accuracy_on_targets']:.4f} | "
                         f"{'yes' if s.get('accepted') else 'REJECTED'} | {s['time_s']:.0f} | "
                         f"{s['samples_per_s']:.3f} |")
        nums["inversions"][st] = {k: {f: s.get(f) for f in ("teacher_accuracy_on_targets", "accepted",
                                                            "time_s", "samples_per_s", "num_samples")}
                                  for k, s in inv[st].items()}
    nums["rejected"] = rejected
    done = sum(len(arms[a]["seeds"]) for a in ARMS) + sum(len(inv[st]) for st in INVERSIONS)
    nums["finished_runs"], nums["planned_runs"] = done, SEEDS * len(PLANNED)
    lines += ["", f"Finished table runs: {done} of {SEEDS * len(PLANNED)} planned "
              f"({len(PLANNED)} runs x {SEEDS} seeds)."]
    return "\n".join(lines) + "\n", nums


def main(argv=None) -> None:
    """The command line (configs/results/round2.table_main)."""
    table_main(__doc__, HERE, build, effect=EFFECT, argv=argv)


if __name__ == "__main__":
    main()
