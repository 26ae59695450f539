"""Builds the Temporal KD results tables (configs/temporal_kd.py) from the runs; no number is typed.

For each clip length's workdir (`python -m kdjax.main --config configs/temporal_kd.py:variant=local,
data=<d> --workdir W`) it reads every finished run's `result.json`:
  W/teacher/                     the transformer teacher (test accuracy)
  W/<student>_l<100 lambda>/seed<k>/   each student at each lambda, seeds 0..2 (same seeds per arm)
Per student: test accuracy (%) at lambda 0 / 0.1 / 0.25 / 0.5, mean +- std (ddof 1) over seeds;
the paired difference (KD - lambda 0) of every lambda with its 95% t interval
(`kdjax.train.stats.paired_difference`); and the "best lambda" (highest mean test accuracy: the
paper's choice, a selection on the test split, so its interval is optimistic), next to the
paper's numbers where PAPERS.md has them (noisy SC 2 s only).

Usage (repository root):
  python -m configs.results.temporal_kd.make_table sc2=configs/results/temporal_kd/raw/sc2 \
      sc4=configs/results/temporal_kd/raw/sc4
Writes `<out>/tables.md` and `<out>/tables.json` (every per-run number), and the kdjax.report
block of every data set (claim verdict, Holm, pictures: `python -m kdjax.report` with the
recipe config `configs/temporal_kd.py:variant=local,data=<name>`) into README.md between its
`<!-- kdjax.report:begin <name> -->` markers, the report's files under `report/<name>/`, with the
recipe's own `attention_<name>_<student>.png` pictures (plot_attention.py) appended.

Raises:
  SystemExit: a malformed name=workdir argument.
"""

from __future__ import annotations

import argparse
import functools
import json
import pathlib

import numpy as np

from configs.temporal_kd import LAMBDAS, STUDENTS, lam_code
from kdjax.report import find_runs, load_config, readme_block
from kdjax.train.stats import format_interval, mean_std, paired_difference

HERE = pathlib.Path(__file__).resolve().parent

# /work/shared/PAPERS.md section 3: noisy Speech Commands v2, 2 s, test accuracy %.
PAPER = {"sc2": {"teacher": 90.59,
                 "lambda0": {"lstm_p": 88.73, "temporal_cnn": 87.77, "crnn": 89.96, "att_rnn": 89.88,
                             "mhatt_rnn": 89.75},
                 "best_kd": {"lstm_p": 89.31, "temporal_cnn": 88.08, "crnn": 90.06, "att_rnn": 91.67,
                             "mhatt_rnn": 91.75}},
         "sc4": {"teacher": 91.22}}
NAMES = {"lstm_p": "LSTM-P", "temporal_cnn": "TC-ResNet", "crnn": "CRNN", "att_rnn": "Att-RNN",
         "mhatt_rnn": "MHAtt-RNN"}


@functools.cache
def _stages(wd: str) -> dict:
    return find_runs(wd)[0]


def _runs(stage_dir: pathlib.Path) -> dict[str, dict]:
    """seed folder -> the numbers of one student stage's finished runs ({} when none)."""
    if not stage_dir.is_dir():
        return {}
    out = {}
    for run in _stages(str(stage_dir.parent)).get(stage_dir.name, []):
        r = run.result
        out[run.name] = {"test": run.test("student", "accuracy"), "params": int(r["params"]["student"]),
                         "train_only_params": r.get("train_only_params", {}),
                         "train_time_s": float(r["train_time_s"]), "steps": int(r["steps"])}
    return out


def _fmt(x: list[float]) -> str:
    return mean_std(x, scale=100, digits=1)


def _ci(d: dict) -> str:
    return format_interval(d, scale=100, digits=1)


def table(tag: str, wd: pathlib.Path) -> tuple[str, dict]:
    lines, data = [], {"students": {}}
    t = wd / "teacher" / "result.json"
    if t.is_file():
        r = json.loads(t.read_text())
        data["teacher"] = {"test": r["models"]["teacher"]["test"]["accuracy"], "params": r["params"]["teacher"],
                           "train_time_s": r["train_time_s"], "steps": r["steps"]}
    paper = PAPER.get(tag, {})
    lines.append(f"### noisy Speech Commands, {tag[2:]} s: test accuracy (%), mean +- std over seeds\n")
    if "teacher" in data:
        lines.append(f"Teacher (transformer, {data['teacher']['params']} params, {data['teacher']['steps']} steps): "
                     f"**{100 * data['teacher']['test']:.1f}** (paper, wav2vec 2.0: {paper.get('teacher', 'n/a')})\n")
    head = "| student | params | " + " | ".join(f"lambda {lam:g}" for lam in LAMBDAS)
    head += " | best lambda: paired gain [95% CI] | paper lambda 0 -> best KD |"
    lines += [head, "|" + "---|" * (len(LAMBDAS) + 4)]
    paired_lines = []
    for s in STUDENTS:
        arms = {lam: _runs(wd / f"{s}_{lam_code(lam)}") for lam in LAMBDAS}
        base = arms[0.0]
        if not base:
            continue
        row = {"runs": {lam_code(k): v for k, v in arms.items()}, "paired": {}}
        cells = []
        best, best_mean = None, -1.0
        for lam in LAMBDAS:
            runs = arms[lam]
            cells.append(_fmt([v["test"] for v in runs.values()]) + (f" (n={len(runs)})" if len(runs) != 3 else "")
                         if runs else "-")
            if lam > 0 and runs:
                common = sorted(set(runs) & set(base))
                d = paired_difference([runs[k]["test"] for k in common], [base[k]["test"] for k in common])
                row["paired"][lam_code(lam)] = d
                m = float(np.mean([v["test"] for v in runs.values()]))
                if m > best_mean:
                    best, best_mean = lam, m
        bd = row["paired"].get(lam_code(best)) if best is not None else None
        best_cell = (f"{best:g}: {_ci(bd)}" + (" (significant)" if bd["significant"] else " (not significant)")
                     if bd else "-")
        pp = ""
        if "lambda0" in paper:
            pp = f"{paper['lambda0'][s]:.2f} -> {paper['best_kd'][s]:.2f} ({paper['best_kd'][s] - paper['lambda0'][s]:+.2f})"
        params = next(iter(base.values()))["params"]
        lines.append(f"| {NAMES[s]} | {params} | " + " | ".join(cells) + f" | {best_cell} | {pp or 'n/a'} |")
        for lam in LAMBDAS[1:]:
            if lam_code(lam) in row["paired"]:
                d = row["paired"][lam_code(lam)]
                paired_lines.append(f"{NAMES[s]} lambda {lam:g}: {_ci(d)} (n={d['n']}, "
                                    f"{'significant' if d['significant'] else 'not significant'})")
        row["best_lambda"] = best
        data["students"][s] = row
    # Secondary (post hoc, chosen after the first runs were seen; no lambda is selected): per
    # (student, seed), the mean over lambda > 0 of (KD - lambda 0); n = students x seeds.
    pooled = []
    for row in data["students"].values():
        base = row["runs"][lam_code(0.0)]
        kd = [row["runs"][lam_code(lam)] for lam in LAMBDAS[1:]]
        for seed, b in base.items():
            if all(seed in k for k in kd):
                pooled.append(float(np.mean([k[seed]["test"] for k in kd])) - b["test"])
    if len(pooled) > 1:
        d = paired_difference(pooled, [0.0] * len(pooled))
        data["pooled_mean_kd_minus_lambda0"] = dict(d, values=pooled)
        lines.append("")
        lines.append(f"Pooled (post hoc): mean over lambda > 0 of KD - lambda 0, per (student, seed), n={d['n']}: "
                     f"{_ci(d)} ({'significant' if d['significant'] else 'not significant'}).")
    lines.append("")
    lines.append("Paired differences KD - lambda 0 (percentage points, 95% t interval over seeds): "
                 + "; ".join(paired_lines) + ".")
    steps = sorted({v["steps"] for r in data["students"].values() for a in r["runs"].values() for v in a.values()})
    secs = sum(v["train_time_s"] for r in data["students"].values() for a in r["runs"].values() for v in a.values())
    lines.append(f"Steps per student run: {steps}; summed student training time: {secs:.0f} s.\n")
    return "\n".join(lines), data


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workdirs", nargs="+", help="name=workdir, e.g. sc2=workdirs/temporal_kd_sc2")
    ap.add_argument("--out", default=str(HERE))
    ap.add_argument("--readme", default=str(HERE / "README.md"), help="'' to skip the kdjax.report blocks")
    a = ap.parse_args()
    md, js = [], {}
    for item in a.workdirs:
        tag, _, wd = item.partition("=")
        if not wd:
            raise SystemExit(f"expected name=workdir, got {item!r}")
        text, data = table(tag, pathlib.Path(wd))
        md.append(text)
        js[tag] = data
        if a.readme:
            # the recipe's own pictures (plot_attention.py, drawn from the live workdir's checkpoints)
            attention = {f"Teacher rollout vs the KD student's head, {NAMES[s]} (plot_attention.py)": str(p)
                         for s in STUDENTS if (p := HERE / f"attention_{tag}_{s}.png").is_file()}
            readme_block(a.readme, tag, wd, str(pathlib.Path(a.out) / "report" / tag), title=f"Temporal KD, {tag}",
                         config=load_config(f"configs/temporal_kd.py:variant=local,data={tag}"), pictures=attention)
    out = pathlib.Path(a.out)
    (out / "tables.md").write_text("\n".join(md))
    (out / "tables.json").write_text(json.dumps(js, indent=1))
    print("\n".join(md))


if __name__ == "__main__":
    main()
