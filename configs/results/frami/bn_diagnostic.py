"""Diagnostic: a synthetic-only student's real-test accuracy with its BatchNorm running
statistics (as evaluated) vs with the test batch's own statistics (train-mode BN, batches of
`--batch` real test clips in a fixed random order). A large gap means the student's BN statistics, estimated on synthetic
spectrograms, do not match real ones (the domain gap of the inverted set).

Run: python configs/results/frami/bn_diagnostic.py --workdir workdirs/frami_fsdd --runs di/seed0,...
Writes <data>_bn_diagnostic.json next to this file.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib

import jax
import numpy as np

from configs import frami
from kdjax.data import get_source
from kdjax.train.checkpoint import load_best_variables
from kdjax.train.program import build_program

HERE = pathlib.Path(__file__).resolve().parent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--arg", default="variant=local,data=fsdd")
    ap.add_argument("--runs", default="di/seed0")
    ap.add_argument("--batch", type=int, default=50)
    a = ap.parse_args()
    cfg = frami.get_config(a.arg)
    st = cfg.stages.di
    src = get_source(st.data.name, st.data.test_split, **dict(st.data.kw))
    s = int(round(st.data.clip_seconds * src.sample_rate))
    x = np.zeros((len(src), s), np.float32)
    y = np.zeros(len(src), int)
    for i in range(len(src)):
        ex = src[i]
        w = np.asarray(ex["audio"], np.float32)
        x[i, :min(s, len(w))] = w[:s]
        y[i] = int(np.argmax(ex["labels"]))
    perm = np.random.default_rng(0).permutation(len(x))  # the source is ordered by class: mix batches
    x, y = x[perm], y[perm]
    p = build_program(st, src.num_classes, src.sample_rate)
    fe, mod = p.frontends["mel"], p.models["student"]

    @jax.jit
    def logits(v, xb):
        f = fe(xb)
        z_eval, _ = mod.apply(v, f, train=False)
        (z_batch, _), _ = mod.apply(v, f, train=True, mutable=["batch_stats"])
        return z_eval, z_batch

    out = {}
    n = len(x) // a.batch * a.batch
    for run in a.runs.split(","):
        v = load_best_variables(os.path.join(os.path.abspath(a.workdir), run), "student")
        v = {"params": v["params"], "batch_stats": v.get("batch_stats", {})}
        ze, zb = zip(*[logits(v, x[i:i + a.batch]) for i in range(0, n, a.batch)], strict=True)
        ze, zb = np.concatenate(ze), np.concatenate(zb)
        out[run] = {"running_stats_accuracy": float(np.mean(ze.argmax(-1) == y[:n])),
                    "test_batch_stats_accuracy": float(np.mean(zb.argmax(-1) == y[:n])), "n": n}
        print(run, out[run], flush=True)
    with open(HERE / f"{st.data.name}_bn_diagnostic.json", "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
