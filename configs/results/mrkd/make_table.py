"""Builds the MRKD results tables (configs/mrkd.py) from the runs' workdirs; no number is typed.

For each data set's workdir (`python -m kdjax.main --config configs/mrkd.py:data=<d> --workdir W`)
it reads every finished run's `result.json` and `logits_test.npz`:
  W/alone/<run>/          (alone=shared: all K peers CE-only in one run)  or
  W/alone_<rep>/<run>/    (alone=separate: one run per peer)
  W/joint/<run>/          the K peers trained jointly with the mutual term
`<run>` is `fold<k>` (ESC-10, official folds) or `seed<k>` (the same seed in both arms). Per peer:
test accuracy alone vs joint, mean +- std (ddof 1) over the runs present in both arms, and the
paired difference joint - alone with its 95% t interval (`kdjax.train.stats.paired_difference`);
for reference the logit-average ensemble of the independently trained (alone) peers (mean of
their test logits `[N, C]`, argmax) and, as an extra row, the same ensemble of the joint peers.
A run present in only one arm is listed but left out of the pairs.

Usage (repository root):
  python -m configs.results.mrkd.make_table esc10=configs/results/mrkd/raw/esc10 \
      sc12=configs/results/mrkd/raw/sc12 fsdd=configs/results/mrkd/raw/fsdd
Writes `<out>/tables.md` (the markdown tables) and `<out>/tables.json` (every per-run number),
puts the tables into README.md between its `<!-- kdjax.report:begin tables -->` markers, and
the kdjax.report block of each data set (a verdict per peer for the config's claim,
`configs/mrkd.py:data=<name>`; pictures under `report/<name>/`) between its `<name>` markers.

A workdir without any run finished in both arms gets a line saying so instead of a table.

Raises:
  SystemExit: a malformed name=workdir argument.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib

import numpy as np

from kdjax.report import load_config, readme_block, replace_block
from kdjax.train.stats import format_difference, mean_std, paired_difference

HERE = pathlib.Path(__file__).resolve().parent


def _acc(z: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(z, -1) == np.argmax(y, -1)))


def _runs(arm_dir: pathlib.Path) -> dict[str, pathlib.Path]:
    """Finished runs (folders with result.json and logits_test.npz) of an arm, by run name."""
    if not arm_dir.is_dir():
        return {}
    return {p.name: p for p in sorted(arm_dir.iterdir())
            if (p / "result.json").is_file() and (p / "logits_test.npz").is_file()}


def _load(run: pathlib.Path) -> tuple[dict[str, float], dict[str, np.ndarray], float, int]:
    """(test accuracy by peer, test logits by peer + "labels", train seconds, steps) of one run."""
    r = json.loads((run / "result.json").read_text())
    npz = dict(np.load(run / "logits_test.npz"))
    acc = {n: float(m["test"]["accuracy"]) for n, m in r["models"].items() if "test" in m}
    return acc, npz, float(r["train_time_s"]), int(r["steps"])


def collect(workdir: str) -> dict:
    """Every per-run number of one data set's workdir (see the module docstring)."""
    w = pathlib.Path(workdir)
    joint = _runs(w / "joint")
    alone_dirs = sorted(p for p in w.glob("alone_*") if p.is_dir())
    alone: dict[str, dict[str, tuple]] = {}  # run -> peer -> (acc, logits)
    times = {"alone": 0.0, "joint": 0.0}
    steps = {}
    for arm in ([w / "alone"] if (w / "alone").is_dir() else alone_dirs):
        for name, run in _runs(arm).items():
            acc, npz, t, s = _load(run)
            times["alone"] += t
            steps["alone"] = s
            for peer, a in acc.items():
                alone.setdefault(name, {})[peer] = (a, npz[peer], npz["labels"])
    jruns = {}
    for name, run in joint.items():
        acc, npz, t, s = _load(run)
        times["joint"] += t
        steps["joint"] = s
        jruns[name] = {peer: (a, npz[peer], npz["labels"]) for peer, a in acc.items()}
    common = sorted(set(alone) & set(jruns))
    if not common:
        raise SystemExit(f"make_table: {workdir}: no run finished in both arms (alone: {sorted(alone)}, "
                         f"joint: {sorted(jruns)})")
    peers = list(jruns[common[0]])
    out = {"workdir": workdir, "runs": common,
           "only_one_arm": sorted(set(alone) ^ set(jruns)), "peers": peers,
           "train_time_s": times, "steps": steps, "rows": {}}
    for peer in peers:
        a = [alone[k][peer][0] for k in common]
        j = [jruns[k][peer][0] for k in common]
        # The stored logits reproduce result.json's accuracy (a check on the files used below).
        for k in common:
            assert abs(_acc(alone[k][peer][1], alone[k][peer][2]) - alone[k][peer][0]) < 1e-9
        out["rows"][peer] = {"alone": a, "joint": j, "paired": paired_difference(j, a)}

    def ensemble(arm):
        accs = []
        for k in common:
            zs = [arm[k][p][1] for p in peers]
            y = arm[k][peers[0]][2]
            accs.append(_acc(np.mean(zs, axis=0), y))
        return accs

    out["ensemble_alone"] = ensemble(alone)
    out["ensemble_joint"] = ensemble(jruns)
    out["ensemble_paired"] = paired_difference(out["ensemble_joint"], out["ensemble_alone"])
    return out


def _ms(v: list[float]) -> str:
    return mean_std(v, scale=100, digits=1)


def table(name: str, d: dict) -> str:
    """The markdown table of one data set (accuracies in %, differences in points)."""
    n = len(d["runs"])
    lines = [f"### {name}: test accuracy (%), mean +- std over {n} runs ({', '.join(d['runs'])})", "",
             "| peer | alone (CE) | joint (CE + mutual) | paired joint - alone [95% CI] | significant |",
             "|---|---|---|---|---|"]
    for peer, r in d["rows"].items():
        p = r["paired"]
        lines.append(f"| {peer} | {_ms(r['alone'])} | {_ms(r['joint'])} | {100 * p['mean']:+.1f} "
                     f"[{100 * p['ci95_low']:+.1f}, {100 * p['ci95_high']:+.1f}] | "
                     f"{'yes' if p['significant'] else 'no'} |")
    p = d["ensemble_paired"]
    lines.append(f"| logit-average ensemble of the {len(d['peers'])} peers (reference, {len(d['peers'])}x "
                 f"inference cost) | {_ms(d['ensemble_alone'])} | {_ms(d['ensemble_joint'])} | "
                 f"{100 * p['mean']:+.1f} [{100 * p['ci95_low']:+.1f}, {100 * p['ci95_high']:+.1f}] | "
                 f"{'yes' if p['significant'] else 'no'} |")
    lines.append("")
    per_run = "; ".join(
        f"{peer}: alone [{', '.join(f'{100 * x:.1f}' for x in r['alone'])}], joint "
        f"[{', '.join(f'{100 * x:.1f}' for x in r['joint'])}]" for peer, r in d["rows"].items())
    lines.append(f"Per run ({', '.join(d['runs'])}): {per_run}.")
    if d["only_one_arm"]:
        lines.append(f"Runs finished in one arm only (not paired, not in the table): {d['only_one_arm']}.")
    lines.append(f"Steps per run: {d['steps']}; summed training time (s): "
                 f"alone {d['train_time_s']['alone']:.0f}, joint {d['train_time_s']['joint']:.0f}.")
    lines.append("Paired differences (fractions): " + "; ".join(
        f"{peer} {format_difference(r['paired'])}" for peer, r in d["rows"].items()) + ".")
    return "\n".join(lines) + "\n"


def _config_of(name: str, out: str) -> str:
    """The config the committed round-1 runs of data set `name` were made with: the stored
    `report/<name>/config.json` when present (so round 2's sc12 defaults never rewrite round-1
    blocks), else `configs/mrkd.py:data=<name>`."""
    stored = pathlib.Path(out) / "report" / name / "config.json"
    return str(stored) if stored.is_file() else f"configs/mrkd.py:data={name}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workdirs", nargs="+", help="name=workdir pairs, e.g. esc10=workdirs/mrkd_esc10")
    ap.add_argument("--out", default=str(HERE))
    ap.add_argument("--readme", default=str(HERE / "README.md"), help="'' to skip the README blocks")
    args = ap.parse_args(argv)
    all_d, parts = {}, []
    for item in args.workdirs:
        name, _, wd = item.partition("=")
        if not wd:
            raise SystemExit(f"make_table: expected name=workdir, got {item!r}")
        try:
            all_d[name] = collect(wd)
        except SystemExit as e:  # not finished yet: say so in the tables instead of failing
            parts.append(f"### {name}\n\nNo paired result yet: {e}\n")
            continue
        parts.append(table(name, all_d[name]))
    os.makedirs(args.out, exist_ok=True)
    if args.readme:
        readme = pathlib.Path(args.readme)
        readme.write_text(replace_block(readme.read_text(), "tables", "\n".join(parts)))
        for item in args.workdirs:
            name, _, wd = item.partition("=")
            if name in all_d:
                readme_block(args.readme, name, wd, str(pathlib.Path(args.out) / "report" / name),
                             title=f"MRKD, {name}", config=load_config(_config_of(name, args.out)))
    (pathlib.Path(args.out) / "tables.md").write_text("\n".join(parts))
    (pathlib.Path(args.out) / "tables.json").write_text(json.dumps(all_d, indent=1))
    print("\n".join(parts))


if __name__ == "__main__":
    main()
