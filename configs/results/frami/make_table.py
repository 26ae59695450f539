"""Builds the FRAMI results (table, raw JSON, pictures) from a workdir of configs/frami.py.

Reads every finished stage's result.json (kdjax.train.summary.summarize), the synthetic shards
of inv_di / inv_frami (one set, or one per seed with `inv_repeat=true`: diversity and inversion
time are then means over the sets, the pictures show seed 0) and the teacher checkpoint; writes
into this folder:
  <data>_summary.json    raw numbers: per-seed student accuracies, paired differences over
                         DeepInversion (kdjax.train.stats.paired_difference), inversion sizes and
                         times, diversity of each synthetic set (and of as many real clips)
  <data>_mel_grid.png    one log-mel spectrogram per class: real / DeepInversion / FRAMI
  <data>_diversity.png   mean pairwise cosine distance of teacher embeddings, overall and within class
and replaces the block between `<!-- table:<data> -->` and `<!-- /table:<data> -->` in README.md.
Nothing is typed by hand: rerun after the experiment.

Run: python configs/results/frami/make_table.py --workdir workdirs/frami_fsdd --arg variant=local,data=fsdd
From the committed summaries alone (the tables, not the pictures):
     python -m configs.results.frami.make_table --summary configs/results/frami/fsdd_summary.json ...
Needs matplotlib (a plotting-only dependency, not in requirements*.txt).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import pathlib
import re

import jax
import numpy as np

from configs import frami
from kdjax import synthetic_diversity as div
from kdjax.data import get_source
from kdjax.data.synthetic import source as synthetic_source
from kdjax.train import stages as stages_lib
from kdjax.train.checkpoint import load_best_variables
from kdjax.train.forward import forward
from kdjax.train.program import build_program
from kdjax.train.stats import format_difference, paired_difference

HERE = pathlib.Path(__file__).resolve().parent
ARMS = [("real", "real data, KD (upper bound, not data-free)"), ("di", "DeepInversion, KD"),
        ("cont", "+ contrastive (FRAMI inversion), KD"), ("hidden", "+ hidden-state reuse (DI inversion)"),
        ("frami", "FRAMI (contrastive + hidden)"),
        ("adv", "DeepInversion + adversarial JS against the di student (ADI, one round), KD")]
OPTIONAL_ARMS = {"adv"}  # rows only when run (`stage=inv_adv+adv`)


def inversion_runs(workdir: str, name: str) -> list[str]:
    """The run folders of inversion stage `name`: `<name>/` (one inversion) or `<name>/seed<k>/`
    (one per seed, `inv_repeat=true`), in seed order; [] if none has finished."""
    if os.path.exists(os.path.join(workdir, name, "result.json")):
        return [os.path.join(workdir, name)]
    runs = [os.path.dirname(r) for r in glob.glob(os.path.join(workdir, name, "seed*", "result.json"))]
    return sorted(runs, key=lambda r: int(os.path.basename(r)[4:]))


def teacher_embeddings(cfg, workdir: str, *, features=None, audio=None, batch: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Teacher `(embedding [N, D], logits [N, C])` of log-mel `features [N, T, F]` or `audio [N, S]`."""
    st = stages_lib.stage_runs(cfg, workdir, names=["di"])[0][3]
    sr = int(st.frontends.mel.sample_rate)
    p = build_program(st, len(json.load(open(os.path.join(inversion_runs(workdir, "inv_di")[0], "synthetic",
                                                        "meta.json")))["class_names"]), sr)
    tv = {"t": load_best_variables(os.path.join(workdir, "teacher"), "teacher")}
    nodes = tuple(n for n in p.nodes if n.name == "t")
    key = "features/mel" if features is not None else "audio"
    data = features if features is not None else audio

    @jax.jit
    def run(x):
        ns, _ = forward(p, tv, {key: x}, jax.random.key(0), train=False, nodes=nodes)
        return ns["teacher"]["t"]["feats"]["embedding"], ns["teacher"]["t"]["logits"]

    embs, logits = [], []
    for i in range(0, len(data), batch):
        chunk = np.asarray(data[i:i + batch], np.float32)
        n = len(chunk)
        if n < batch:  # one compiled shape
            chunk = np.concatenate([chunk, np.zeros((batch - n, *chunk.shape[1:]), np.float32)])
        e, z = run(chunk)
        embs.append(np.asarray(e)[:n])
        logits.append(np.asarray(z)[:n])
    return np.concatenate(embs), np.concatenate(logits)


def real_clips(cfg, n: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` real train clips (every k-th, start-cropped/zero-padded to the clip length) and labels."""
    st = cfg.stages.teacher
    kw = dict(st.data.kw)
    src = get_source(st.data.name, st.data.train_split, **kw)
    sr = src.sample_rate
    s = int(round(st.data.clip_seconds * sr))
    idx = np.linspace(0, len(src) - 1, n).astype(int)
    out, labels = np.zeros((n, s), np.float32), []
    for j, i in enumerate(idx):
        ex = src[int(i)]
        a = np.asarray(ex["audio"], np.float32)
        if np.issubdtype(np.asarray(ex["audio"]).dtype, np.integer):
            a = a / 32768.0
        out[j, :min(s, len(a))] = a[:s]
        labels.append(np.argmax(ex["labels"]))
    return out, np.asarray(labels)


def diversity(z: np.ndarray, y: np.ndarray) -> dict[str, float]:
    return {"cosine": div.mean_pairwise_cosine_distance(z),
            "cosine_within_class": div.within_class(div.mean_pairwise_cosine_distance, z, y),
            "euclidean": div.mean_pairwise_distance(z),
            "euclidean_within_class": div.within_class(div.mean_pairwise_distance, z, y)}


def pictures(data: str, mels: dict[str, tuple[np.ndarray, np.ndarray]], divs: dict[str, dict], class_names):
    """`<data>_mel_grid.png` (one log-mel per class: real / each synthetic set) and
    `<data>_diversity.png`, drawn by kdjax.report.pictures (the report's FRAMI picture hook
    draws the same grid from a workdir's shards)."""
    from kdjax.report import pictures as pics

    pics.mel_grid(mels, class_names, str(HERE / f"{data}_mel_grid.png"),
                  f"{data}: log-mel (dB; time ->, mel bins ^), one sample per class")
    pics.diversity_bars(divs, str(HERE / f"{data}_diversity.png"), f"{data}: diversity of teacher embeddings")


def table(data: str, s: dict, inv: dict, divs: dict, teacher: dict) -> str:
    st = s["stages"]
    lines = [f"Teacher: test accuracy {teacher.get('test', float('nan')):.4f}, {teacher.get('params', 0):,d} params.",
             "",
             "| arm | student test accuracy (mean +- std) | per seed | n | FRAMI-style arm - DeepInversion, paired 95% CI | train s (all seeds) |",
             "|---|---|---|---|---|---|"]
    for arm, desc in ARMS:
        if arm not in st:
            if arm not in OPTIONAL_ARMS:
                lines.append(f"| {arm}: {desc} | not run | | | | |")
            continue
        x = st[arm]
        vals = ", ".join(f"{r['test']:.4f}" for r in x["runs"])
        pd = x.get("paired_over_di")
        lines.append(f"| {arm}: {desc} | {x['test_mean']:.4f} +- {x['test_std']:.4f} | {vals} | {len(x['runs'])} | "
                     f"{format_difference(pd) if pd else '(baseline)' if arm == 'di' else ''} | {x['train_time_s']:.0f} |")
    if "frami" in st and "di" in st:
        lines.append("")
        lines.append(f"Student parameters (deployed): {st['di']['params']:,d} (every arm; the projection is training-only).")
    lines += ["", "| synthetic set | inversions (seeds) | samples each | shape [T, F] | inversion time s per set "
              "(2 CPU cores) | samples/s | cosine dist. (all / within class) | euclidean dist. (all / within class) |",
              "|---|---|---|---|---|---|---|---|"]
    for name in ("inv_di", "inv_frami", "inv_adv", "real"):
        d = divs.get(name)
        if name == "real":
            n = inv.get("real_n", 0)
            row = f"| real train clips (reference) | | {n} | | | |"
        elif name in inv:
            r = inv[name]
            row = (f"| {name} | {r.get('inversions', 1)} | {r['num_samples']} | {r['shape'][1:]} | {r['time_s']:.0f} | "
                   f"{r['samples_per_s']:.2f} |")
        else:
            continue
        if d:
            row += (f" {d['cosine']:.4f} / {d['cosine_within_class']:.4f} | "
                    f"{d['euclidean']:.2f} / {d['euclidean_within_class']:.2f} |")
        lines.append(row)
    return "\n".join(lines)


def write_block(data: str, md: str) -> None:
    """Replaces README.md's block between `<!-- table:<data> -->` and `<!-- /table:<data> -->`
    (appends it when absent)."""
    readme = HERE / "README.md"
    text = readme.read_text() if readme.exists() else ""
    block = f"<!-- table:{data} -->\n{md}\n<!-- /table:{data} -->"
    pat = re.compile(rf"<!-- table:{data} -->.*?<!-- /table:{data} -->", re.S)
    text = pat.sub(lambda _: block, text) if pat.search(text) else text + "\n" + block + "\n"
    readme.write_text(text)


def from_summaries(paths: list[str]) -> None:
    """Rebuilds the README tables from committed `<data>_summary.json` files (no workdir: the
    run folders, shards and checkpoints are not kept); pictures and JSON are left as they are."""
    for path in paths:
        with open(path) as f:
            out = json.load(f)
        data = os.path.basename(path).removesuffix("_summary.json")
        missing = [k for k in ("summary", "inversion", "diversity", "teacher") if k not in out]
        if missing:
            raise SystemExit(f"{path}: no {missing} (expected a <data>_summary.json written by this script)")
        md = table(data, out["summary"], out["inversion"], out["diversity"], out["teacher"])
        write_block(data, md)
        print(md)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", help="a live workdir of configs/frami.py")
    ap.add_argument("--summary", action="append", default=[],
                    help="instead of --workdir: a committed <data>_summary.json (repeatable); rebuilds its table only")
    ap.add_argument("--arg", default="variant=local,data=fsdd")
    ap.add_argument("--no_pictures", action="store_true")
    ap.add_argument("--tag", default="", help="suffix of the output names and README block (e.g. _v1)")
    args = ap.parse_args()
    if args.summary:
        return from_summaries(args.summary)
    if not args.workdir:
        raise SystemExit("expected --workdir <frami workdir> or --summary <data>_summary.json")
    workdir = os.path.abspath(args.workdir)
    cfg = frami.get_config(args.arg)
    data = cfg.stages.teacher.data.name + args.tag
    s = stages_lib.summarize(cfg, workdir)
    # FRAMI vs DeepInversion, recomputed here from the per-seed values too (same function).
    st = s["stages"]
    if "frami" in st and "di" in st:
        a = {r["seed"]: r["test"] for r in st["frami"]["runs"]}
        b = {r["seed"]: r["test"] for r in st["di"]["runs"]}
        common = sorted(set(a) & set(b))
        if len(common) >= 1:
            s["frami_minus_di"] = paired_difference([a[k] for k in common], [b[k] for k in common])
    teacher = {}
    tr = os.path.join(workdir, "teacher", "result.json")
    if os.path.exists(tr):
        r = json.load(open(tr))
        teacher = {"test": r["models"]["teacher"]["test"]["accuracy"], "params": r["params"]["teacher"],
                   "train_time_s": r["train_time_s"]}
    inv, divs, mels = {}, {}, {}
    class_names = None
    for name in ("inv_di", "inv_frami", "inv_adv"):
        runs = inversion_runs(workdir, name)
        if not runs:
            continue
        per_seed = []
        for k, run in enumerate(runs):  # diversity per inversion seed, then the mean over seeds
            r = json.load(open(os.path.join(run, "result.json")))["summary"]
            src = synthetic_source(root=os.path.join(run, "synthetic"))
            class_names = src.class_names
            x, y = src.arrays["features/mel"], np.argmax(src.arrays["labels"], -1)
            z, logits = teacher_embeddings(cfg, workdir, features=x)
            d = diversity(z, y)
            d["teacher_accuracy_on_targets"] = float(np.mean(np.argmax(logits, -1) == y))
            per_seed.append((r, d))
            if k == 0:
                mels[name] = (x, y)  # the pictures show inversion seed 0
        inv[name] = {"num_samples": per_seed[0][0]["num_samples"], "shape": per_seed[0][0]["shape"],
                     "inversions": len(per_seed), "time_s": float(np.mean([r["time_s"] for r, _ in per_seed])),
                     "samples_per_s": float(np.mean([r["samples_per_s"] for r, _ in per_seed])),
                     "per_seed": [r for r, _ in per_seed]}
        divs[name] = {k: float(np.mean([d[k] for _, d in per_seed])) for k in per_seed[0][1]}
        divs[name]["per_seed"] = [d for _, d in per_seed]
    if inv:
        n = max(r["num_samples"] for r in inv.values())
        audio, y = real_clips(cfg, n)
        z, logits = teacher_embeddings(cfg, workdir, audio=audio)
        divs["real"] = diversity(z, y)
        divs["real"]["teacher_accuracy_on_targets"] = float(np.mean(np.argmax(logits, -1) == y))
        inv["real_n"] = n
        st_di = stages_lib.stage_runs(cfg, workdir, names=["di"])[0][3]
        p = build_program(st_di, len(class_names), int(st_di.frontends.mel.sample_rate))
        mels = {"real": (np.asarray(jax.jit(p.frontends["mel"])(audio)), y)} | mels
    out = {"summary": s, "teacher": teacher, "inversion": inv, "diversity": divs, "arg": args.arg}
    with open(HERE / f"{data}_summary.json", "w") as f:
        json.dump(out, f, indent=1, default=float)
    if mels and not args.no_pictures:
        pictures(data, {k.replace("inv_", ""): v for k, v in mels.items()},
                 {k.replace("inv_", ""): {m: v for m, v in d.items() if m != "per_seed"} for k, d in divs.items()},
                 class_names)
    md = table(data, s, inv, divs, teacher)
    write_block(data, md)
    print(md)


if __name__ == "__main__":
    main()
