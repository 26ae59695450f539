"""Second-round Temporal KD table (issue #26) from the committed per-run files; no number is typed.

Reads `configs/results/temporal_kd/round2/selection_<data>.json` and
`round2/<data>/<stage>/seed<k>/result.json` (written by `run_sc2.py`) and applies the README's
"Plan, second round":
  primary    per student in PRIMARY (Att-RNN, MHAtt-RNN): test accuracy at its chosen lambda
             minus at lambda 0, paired over the seeds finished in both arms, plain 95% t
             interval (`kdjax.train.stats.paired_difference`); verdict against the student's
             smallest effect of interest (`EFFECTS`, the paper's 2 s gains; `verdict`, whose
             "refuted" needs most runs of the pair converged); Holm over the two primaries
             (`holm`): "reproduced" also needs a Holm-adjusted p <= 0.05;
  secondary  CRNN and TC-ResNet (chosen lambda - lambda 0) and the own-attention arms
             (`<rnn>_own_l<chosen>` - `<rnn>_l000`), Holm-adjusted p-values, no verdict;
  convergence per arm: runs whose best validation step lies >= patience validations before the
             last (`result.json` `models.student.converged`), with the best / last steps;
  selection  the validation accuracies of the seed-100 selection runs and the chosen lambdas.
Partial trees are fine: an arm pair with fewer than 2 paired seeds shows its values only.

Usage (repository root): `python -m configs.results.temporal_kd.round2.make_table sc2`
(`--effect E` replaces both primaries' smallest effect of interest; default: the Plan's).
Writes `round2/tables_<data>.json` and the markdown between the README's
`<!-- kdjax.report:begin round2_<data> -->` markers (also printed).
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from configs.results.round2 import table_main, teacher_numbers
from configs.temporal_kd import lam_code
from kdjax.train.stats import holm, paired_difference, runs_to_decide, verdict

HERE = pathlib.Path(__file__).resolve().parent
PRIMARY = ("att_rnn", "mhatt_rnn")
SECONDARY_HEAD = ("crnn", "temporal_cnn")
OWN = ("att_rnn", "mhatt_rnn")
# smallest effect of interest per primary (test accuracy, fraction): the paper's lambda 0 -> best
# KD at 2 s (PAPERS.md section 3), used at 4 s too (no per-student 4 s numbers there)
EFFECTS = {"att_rnn": 0.0179, "mhatt_rnn": 0.0200}
NAMES = {"att_rnn": "Att-RNN", "mhatt_rnn": "MHAtt-RNN", "crnn": "CRNN", "temporal_cnn": "TC-ResNet"}
SEEDS = 5


def _pts(x: float) -> str:
    return f"{100 * x:+.2f}"


def _runs(w: pathlib.Path, stage: str) -> dict[str, dict]:
    """seed folder -> result.json of one arm (missing arm: {})."""
    out = {}
    for res in sorted((w / stage).glob("seed*/result.json")):
        out[res.parent.name] = json.loads(res.read_text())
    return out


def _arm(runs: dict[str, dict]) -> dict:
    m = {k: r["models"]["student"] for k, r in runs.items()}
    return dict(
        seeds=list(runs), test={k: m[k]["test"]["accuracy"] for k in m},
        converged=sum(bool(m[k].get("converged")) for k in m), n=len(m),
        best_step={k: int(m[k]["best_step"]) for k in m},
        last_step={k: int(r.get("last_step", -1)) for k, r in runs.items()},
        train_time_s=float(sum(r.get("train_time_s", 0.0) for r in runs.values())))


def _pair(arms: dict[str, dict], arm: str, base: str) -> dict:
    a, b = arms[arm], arms[base]
    seeds = [k for k in a["seeds"] if k in b["test"]]
    out = dict(arm=arm, baseline=base, seeds=seeds, arm_test=[a["test"][k] for k in seeds],
               base_test=[b["test"][k] for k in seeds], stats=None)
    if len(seeds) >= 2:
        out["stats"] = paired_difference(out["arm_test"], out["base_test"])
    elif len(seeds) == 1:
        out["diff"] = out["arm_test"][0] - out["base_test"][0]
    out["converged"] = sum(k in arms[s]["_conv_seeds"] for s in (arm, base) for k in seeds)
    out["runs"] = 2 * len(seeds)
    return out


def build(data: str, effect: float = 0.0, root: pathlib.Path = HERE) -> tuple[str, dict]:
    """(markdown, numbers) of one clip length's second-round table from `root/<data>` and
    `root/selection_<data>.json` (see the module docstring). `effect` > 0 replaces both
    primaries' smallest effect of interest."""
    root = pathlib.Path(root)
    w = root / data
    sel_path = root / f"selection_{data}.json"
    lines = [f"### {data}, second round (issue #26): test accuracy (%), speech-embedding teacher", ""]
    nums: dict = dict(data=data)
    tm = teacher_numbers(w / "teacher")
    if tm is not None:
        nums["teacher"] = tm
        lines += [f"Teacher (speech-embedding transformer, rebuilt): validation "
                  f"{100 * tm['validation']:.1f}%, test {100 * tm['test']:.1f}% "
                  f"(best step {tm['best_step']}); paper's wav2vec 2.0 teacher at 2 s: 90.59%.", ""]
    if not sel_path.is_file():
        lines += ["Selection not finished: no table yet.", ""]
        return "\n".join(lines), nums
    sel = json.loads(sel_path.read_text())
    chosen = {s: float(v) for s, v in sel["chosen"].items()}
    nums["selection"] = sel
    lines += [f"**Selection on validation** (seed {sel['seed']}, lambda in "
              f"{{{', '.join(str(x) for x in sel['lambdas'])}}}; best validation accuracy, %; test "
              f"not read). Table ceiling: {sel['table_steps']} steps.", "",
              "| student | " + " | ".join(f"lambda {x}" for x in sel["lambdas"]) + " | chosen |",
              "|---|" + "---|" * len(sel["lambdas"]) + "---|"]
    for s, runs in sel["runs"].items():
        cells = [f"{100 * runs[str(x)]['validation']:.2f} (best {runs[str(x)]['best_step']}/"
                 f"{runs[str(x)]['last_step']}{'' if runs[str(x)]['converged'] else ', not conv.'})"
                 if str(x) in runs else "-" for x in sel["lambdas"]]
        lines.append(f"| {NAMES.get(s, s)} | " + " | ".join(cells) + f" | {chosen[s]} |")
    lines.append("")

    stages = []
    for s in PRIMARY + SECONDARY_HEAD:
        stages += [f"{s}_{lam_code(0.0)}", f"{s}_{lam_code(chosen[s])}"]
    stages += [f"{s}_own_{lam_code(chosen[s])}" for s in OWN]
    arms = {}
    for st in stages:
        runs = _runs(w, st)
        a = _arm(runs)
        a["_conv_seeds"] = [k for k, r in runs.items() if r["models"]["student"].get("converged")]
        arms[st] = a
    pairs = {}
    for s in PRIMARY + SECONDARY_HEAD:
        pairs[s] = _pair(arms, f"{s}_{lam_code(chosen[s])}", f"{s}_{lam_code(0.0)}")
    for s in OWN:
        pairs[f"{s}_own"] = _pair(arms, f"{s}_own_{lam_code(chosen[s])}", f"{s}_{lam_code(0.0)}")

    # primaries: Holm over the two (those with an interval)
    prim = [s for s in PRIMARY if pairs[s]["stats"] is not None]
    adj = dict(zip(prim, holm([pairs[s]["stats"]["p_value"] for s in prim]), strict=True)) if prim else {}
    lines += ["**Primary, per student: chosen lambda - lambda 0** (points; paired 95% t interval; "
              "Holm over the two primaries):", "",
              "| student | arm - lambda 0 | n | mean [95% CI] | half-width | p | Holm p | smallest effect "
              "| converged runs | verdict |", "|---|---|---|---|---|---|---|---|---|---|"]
    nums["primary"] = {}
    for s in PRIMARY:
        p = pairs[s]
        eff = effect or EFFECTS[s]
        row = dict(arm=p["arm"], baseline=p["baseline"], seeds=p["seeds"], effect=eff,
                   converged=p["converged"], runs=p["runs"])
        q = p["stats"]
        if q is None:
            one = f"{_pts(p['diff'])} (1 seed)" if "diff" in p else "no paired seed yet"
            lines.append(f"| {NAMES[s]} | {p['arm']} | {len(p['seeds'])} | {one} | - | - | - | "
                         f"+{100 * eff:.2f} | {p['converged']}/{p['runs']} | - |")
            row["verdict"] = None
        else:
            conv = p["converged"] > p["runs"] / 2
            v = verdict(q["ci95_low"], q["ci95_high"], eff, "greater", converged=conv)
            note = ""
            if v == "reproduced" and adj[s] > 0.05:
                v, note = "inconclusive", " (interval excludes 0, Holm p > 0.05)"
            more = runs_to_decide(q["std"], eff, mean=q["mean"]) if v == "inconclusive" else None
            row.update(stats=q, holm_p=adj[s], verdict=v, runs_to_decide=more)
            lines.append(
                f"| {NAMES[s]} | {p['arm']} | {q['n']} | {_pts(q['mean'])} [{_pts(q['ci95_low'])}, "
                f"{_pts(q['ci95_high'])}] | {100 * q['half_width']:.2f} | {q['p_value']:.3f} | "
                f"{adj[s]:.3f} | +{100 * eff:.2f} | {p['converged']}/{p['runs']} | **{v}**{note}"
                + (f"; about {more} paired seeds would decide it" if more else "") + " |")
        nums["primary"][s] = row
    lines.append("")

    sec = [k for k in list(SECONDARY_HEAD) + [f"{s}_own" for s in OWN] if pairs[k]["stats"] is not None]
    sadj = dict(zip(sec, holm([pairs[k]["stats"]["p_value"] for k in sec]), strict=True)) if sec else {}
    lines += ["**Secondary** (Holm over the secondaries with >= 2 paired seeds; no verdict):", "",
              "| comparison | n | mean [95% CI] | p | Holm p | converged runs |", "|---|---|---|---|---|---|"]
    nums["secondary"] = {}
    for k in list(SECONDARY_HEAD) + [f"{s}_own" for s in OWN]:
        p = pairs[k]
        q = p["stats"]
        if q is None:
            one = f"{_pts(p['diff'])} (1 seed)" if "diff" in p else "no paired seed yet"
            lines.append(f"| {p['arm']} - {p['baseline']} | {len(p['seeds'])} | {one} | - | - | "
                         f"{p['converged']}/{p['runs']} |")
        else:
            lines.append(f"| {p['arm']} - {p['baseline']} | {q['n']} | {_pts(q['mean'])} "
                         f"[{_pts(q['ci95_low'])}, {_pts(q['ci95_high'])}] | {q['p_value']:.3f} | "
                         f"{sadj[k]:.3f} | {p['converged']}/{p['runs']} |")
        nums["secondary"][k] = dict(arm=p["arm"], baseline=p["baseline"], seeds=p["seeds"],
                                    stats=q, holm_p=sadj.get(k))
    lines += ["", "**Arms** (test accuracy of the best-by-validation parameters; convergence: best "
              "validation step >= patience validations before the last):", "",
              "| stage | runs | test %, mean +- std | per seed | converged | best / last step | train time (s, sum) |",
              "|---|---|---|---|---|---|---|"]
    nums["arms"] = {}
    done = 0
    for st in stages:
        a = arms[st]
        done += a["n"]
        v = [a["test"][k] for k in a["seeds"]]
        ms = (f"{100 * np.mean(v):.2f} +- {100 * np.std(v, ddof=1):.2f}" if len(v) > 1
              else (f"{100 * v[0]:.2f}" if v else "-"))
        per = ", ".join(f"{100 * x:.1f}" for x in v) or "-"
        steps = ", ".join(f"{a['best_step'][k]}/{a['last_step'][k]}" for k in a["seeds"]) or "-"
        lines.append(f"| {st} | {a['n']} | {ms} | {per} | {a['converged']}/{a['n']} | {steps} | "
                     f"{a['train_time_s']:.0f} |")
        nums["arms"][st] = {k: v for k, v in a.items() if not k.startswith("_")}
    planned = SEEDS * len(stages)
    extra = sum(max(0, arms[st]["n"] - SEEDS) for st in stages)  # the Plan's extension (seeds >= SEEDS)
    nums["finished_runs"], nums["planned_runs"], nums["extension_runs"] = done, planned, extra
    lines += ["", f"Finished table runs: {done - extra} of {planned} planned ({len(stages)} arms x {SEEDS} seeds)"
              + (f", and {extra} of the Plan's extension (seeds {SEEDS}-{2 * SEEDS - 1} of the primary pairs "
                 f"whose 5-seed verdict was inconclusive with <= 10 seeds to decide)." if extra else ".")]
    return "\n".join(lines) + "\n", nums


def main(argv=None) -> None:
    table_main(__doc__, HERE, build, effect=0.0, argv=argv)


if __name__ == "__main__":
    main()
