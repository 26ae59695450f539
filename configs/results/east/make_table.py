"""Builds the EAsT results table (configs/east.py, variant=local, ESC-10 5-fold CV) from the runs.

No number is typed: for each teacher's workdir (`python -m kdjax.main --config
configs/east.py:variant=local,teacher=<t> --workdir W`) it reads every finished run's
`result.json`:
  W/cache/fold<f>/    the embedding cache (clips/s, array shapes)
  W/probe/fold<f>/    the linear probe on the teacher's embeddings (test accuracy)
  W/<arm>/fold<f>/    the 2-D CNN student per arm: none / dcor / kd / dcor_kd
Per teacher and arm: test accuracy (%) mean +- std (ddof 1) over folds, and the paired
difference over `none` (same fold, same seed; `kdjax.train.stats.paired_difference`, 95% t
interval over folds), plus dcor_kd - kd (does the feature term add to KD?) and dcor / dcor_kd -
probe (the paper's comparison of EAsT students with their teacher's linear probe).

The `none` arm never reads the teacher (task loss only; the joined embeddings are in the batch
but unused), so one set of `none` runs serves every teacher: a workdir without `none/` takes
it from the first workdir that has it (`--shared-none`, default on), and the table says so.

Usage (repository root):
  python -m configs.results.east.make_table birdnet=configs/results/east/raw/birdnet \
      musicnn=configs/results/east/raw/musicnn --export musicnn=configs/results/east/musicnn_export_meta.json
Writes `<out>/tables.md` and `<out>/tables.json` (every per-fold number), and the kdjax.report
block of each teacher (claim verdict with the Nadeau-Bengio interval over the overlapping
folds, Holm, pictures; `configs/east.py:variant=local,teacher=<t>` gives the claim) into
README.md between its `<!-- kdjax.report:begin <teacher> -->` markers, files under `report/<teacher>/`.

Raises:
  SystemExit: a malformed teacher=workdir argument, or no finished run at all.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np

from configs.east import ARMS
from kdjax.report import find_runs, load_config, readme_block
from kdjax.train.stats import format_interval, mean_std, paired_difference

HERE = pathlib.Path(__file__).resolve().parent
# variant=local (the committed runs); musicnn's config needs its export folder named (not read here)
CONFIG = {"birdnet": "configs/east.py:variant=local,teacher=birdnet",
          "musicnn": "configs/east.py:variant=local,teacher=musicnn,byo_dir=/emb/musicnn_mtt"}

def _config_of(teacher: str, out: pathlib.Path) -> str:
    """The config the committed runs of `teacher` were made with: its stored
    `report/<teacher>/config.json` (written with the round-1 tables) when present, so a later
    change of configs/east.py (round 2: w, the Nadeau-Bengio ratio 80/260) never rewrites
    round-1 numbers; else the recipe's current config (`CONFIG`)."""
    stored = out / "report" / teacher / "config.json"
    if stored.is_file():
        return str(stored)
    return CONFIG.get(teacher, f"configs/east.py:variant=local,teacher={teacher}")


NAMES = {"birdnet": "BirdNET V2.4 (1024-d, 2 x 3 s windows)", "musicnn": "musicnn MTT (200-d penultimate, 1 x 3 s patch)"}
ARM_NAMES = {"none": "no teacher", "dcor": "+dCor", "kd": "+KD", "dcor_kd": "+dCor+KD"}


def _runs(stage_dir: pathlib.Path, model: str) -> dict[str, dict]:
    """fold folder -> the numbers of one stage's finished runs ({} when none)."""
    if not stage_dir.is_dir():
        return {}
    runs = find_runs(str(stage_dir.parent), borrow={stage_dir.name: str(stage_dir)})[0].get(stage_dir.name, [])
    return {r.name: {"test": r.test(model, "accuracy"), "params": int(r.result["params"][model]),
                     "train_time_s": float(r.result["train_time_s"]), "steps": int(r.result["steps"])}
            for r in runs if r.repeat and r.repeat[0] == "fold"}


def _fmt(runs: dict[str, dict]) -> str:
    if not runs:
        return "-"
    return mean_std([v["test"] for v in runs.values()], scale=100, digits=1) + (
        f" (n={len(runs)})" if len(runs) != 5 else "")


def _ci(d: dict) -> str:
    sig = "significant" if d["significant"] else "not significant"
    return f"{format_interval(d, scale=100, digits=1)} (n={d['n']}, {sig})"


def _paired(a: dict, b: dict) -> dict | None:
    common = sorted(set(a) & set(b))
    if len(common) < 2:
        return None
    return paired_difference([a[k]["test"] for k in common], [b[k]["test"] for k in common])


def build(workdirs: dict[str, pathlib.Path], shared_none: bool = True,
          exports: dict[str, str] | None = None) -> tuple[str, dict]:
    """(markdown, json-able data) for the given {teacher: workdir}; `exports`: {teacher: meta.json
    of an offline export (kdjax.embeddings.musicnn_export)}."""
    exports = exports or {}
    none_src = next((t for t, wd in workdirs.items() if _runs(wd / "none", "student")), None)
    data: dict = {"teachers": {}}
    lines = ["### ESC-10, 5-fold CV (official folds): test accuracy (%), mean +- std over folds\n",
             "| teacher | probe (linear, on the embedding) | " + " | ".join(ARM_NAMES[a] for a in ARMS) + " |",
             "|" + "---|" * (len(ARMS) + 2)]
    paired_lines, notes = [], []
    for t, wd in workdirs.items():
        arms = {a: _runs(wd / a, "student") for a in ARMS}
        if not arms["none"] and shared_none and none_src and none_src != t:
            arms["none"] = _runs(workdirs[none_src] / "none", "student")
            notes.append(f"{t}: the `none` runs are {none_src}'s (the arm reads no teacher; same folds and seeds).")
        probe = _runs(wd / "probe", "probe")
        caches = {}
        for p in sorted((wd / "cache").glob("fold*")):
            f = p / "result.json"
            if f.is_file():
                caches[p.name] = json.loads(f.read_text())["summary"]
        row = {"probe": probe, "arms": arms, "cache": caches, "paired_over_none": {}}
        if t in exports:
            row["export"] = {k: v for k, v in json.loads(pathlib.Path(exports[t]).read_text()).items() if k != "check"}
        for a in ARMS[1:]:
            d = _paired(arms[a], arms["none"])
            if d:
                row["paired_over_none"][a] = d
                paired_lines.append(f"{t} {ARM_NAMES[a]} - no teacher: {_ci(d)}")
        d = _paired(arms["dcor_kd"], arms["kd"])
        if d:
            row["dcor_kd_minus_kd"] = d
            paired_lines.append(f"{t} +dCor+KD - +KD: {_ci(d)}")
        for a in ("dcor", "dcor_kd"):  # the paper's comparison: EAsT students vs their teacher's probe
            d = _paired(arms[a], probe)
            if d:
                row[f"{a}_minus_probe"] = d
                paired_lines.append(f"{t} {ARM_NAMES[a]} student - its probe: {_ci(d)}")
        data["teachers"][t] = row
        lines.append(f"| {NAMES.get(t, t)} | {_fmt(probe)} | " + " | ".join(_fmt(arms[a]) for a in ARMS) + " |")
    if not any(r["probe"] or any(r["arms"].values()) for r in data["teachers"].values()):
        raise SystemExit("make_table: no finished run in " + ", ".join(map(str, workdirs.values())))
    lines += ["", "Paired differences (percentage points, 95% t interval over folds, same fold and seed in both "
              "arms):", ""] + [f"- {x}" for x in paired_lines]
    student = [v for r in data["teachers"].values() for a in r["arms"].values() for v in a.values()]
    if student:
        lines.append("")
        lines.append(f"Student: `cnn2d`, {student[0]['params']:,} params; steps per run "
                     f"{sorted({v['steps'] for v in student})}; mean training time per run "
                     f"{np.mean([v['train_time_s'] for v in student]):.0f} s.")
    for t, r in data["teachers"].items():
        if r["cache"]:
            n = sum(c["num_clips"] for c in r["cache"].values())
            s = sum(c["time_s"] for c in r["cache"].values())
            what = ("clip extractions (FLAC decoding included)" if t == "birdnet" else
                    "clips read from the exported .npy files")
            lines.append(f"Cache `{t}`: {n} {what} over {len(r['cache'])} folds in {s:.0f} s ({n / s:.1f} clips/s).")
        if r.get("export"):
            e = r["export"]
            lines.append(f"Export `{t}` (TensorFlow, once, outside kdjax): {e['files']} clips in {e['time_s']:.0f} s "
                         f"({e['files_per_s']:.1f} clips/s), layer {e['layer']}, {e['dim']}-d, non-finite files: "
                         f"{e['files_with_nonfinite']}.")
    lines += [""] + notes
    return "\n".join(lines) + "\n", data


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workdirs", nargs="+", help="teacher=workdir, e.g. birdnet=workdirs/east_birdnet")
    ap.add_argument("--out", default=str(HERE))
    ap.add_argument("--readme", default=str(HERE / "README.md"), help="'' to skip the kdjax.report blocks")
    ap.add_argument("--no-shared-none", dest="shared_none", action="store_false")
    ap.add_argument("--export", action="append", default=[],
                    help="teacher=meta.json of its offline export, e.g. musicnn=/emb/musicnn_mtt/meta.json")
    a = ap.parse_args()
    wds = {}
    for x in a.workdirs:
        if "=" not in x:
            raise SystemExit(f"make_table: expected teacher=workdir, got {x!r}")
        k, v = x.split("=", 1)
        wds[k] = pathlib.Path(v)
    exports = dict(x.split("=", 1) for x in a.export)
    md, data = build(wds, a.shared_none, exports)
    out = pathlib.Path(a.out)
    none_src = next((t for t, wd in wds.items() if (wd / "none").is_dir()), None)
    for t, wd in wds.items() if a.readme else ():
        borrow = ({"none": str(wds[none_src] / "none")}
                  if a.shared_none and none_src and not (wd / "none").is_dir() else None)
        readme_block(a.readme, t, str(wd), str(out / "report" / t), title=f"EAsT, {NAMES.get(t, t)}",
                     config=load_config(_config_of(t, out)), borrow=borrow)
    (out / "tables.md").write_text(md)
    (out / "tables.json").write_text(json.dumps(data, indent=1) + "\n")
    print(md)


if __name__ == "__main__":
    main()
