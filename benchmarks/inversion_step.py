"""Speed of one model-inversion step (DeepInversion vs FRAMI) on this machine.

What is timed: the jitted Adam step on synthetic log-mel inputs `[B, T, F]` that the `invert`
stage runs (`kdjax.train.invert.make_inversion_step`: the stage's own step), built from
configs/frami.py's `inv_di` / `inv_frami` stages (`variant=local,data=fsdd`: the local teacher
architecture, logmel40_8k, T=101 frames x F=40 mels). DeepInversion: one teacher forward with
BatchNorm moment capture + backward to the inputs; FRAMI: two augmented views (two forwards and
backwards) + the InfoNCE term with a memory bank of `bank` rows; ADI (`inv_adv`): DeepInversion +
a forward/backward through the student for the adversarial JS term. The config's views
(time jitter, frequency shift, gain) and clamp are part of the step. The teacher is randomly
initialised (speed does not depend on its weights).

Reported per stage and batch: median seconds per step over the timed steps after warm-up,
steps/s, sample-steps/s (= B * steps/s), and synthetic samples/s at the config's number of
steps per batch (= B / (steps * s/step): what a full inversion delivers), with the 1-minute
load average before and after (2 shared cores).

Run: python benchmarks/inversion_step.py [--batch 40] [--steps 15] [--warmup 2] [--stages ...] [--out DIR]
Writes benchmarks/results/inversion_step.json and inversion_step.md (or DIR/...).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # `configs` from any cwd

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from configs import frami  # noqa: E402
from kdjax.train.invert import make_inversion_step  # noqa: E402
from kdjax.train.program import build_program  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent / "results"


def bench(stage: str, batch: int, steps: int, warmup: int) -> dict:
    cfg = frami.get_config("variant=local,data=fsdd")
    c = cfg.stages[stage]
    inv = c.invert
    p = build_program(c, 10, 8000)
    shape = jax.eval_shape(p.frontends["mel"], jax.ShapeDtypeStruct((batch, 8000), jnp.float32)).shape
    teachers = {name: jax.jit(lambda k, m=m: m.init(k, jnp.zeros(shape), train=False))(jax.random.key(i))
                for i, (name, m) in enumerate(p.teachers.items())}  # t (and the ADI student s)
    bank = None
    if inv.get("memory_bank"):
        feat = str(inv.memory_bank.path).split(".")[-1]  # teacher.t.feats.<feat>: its width, whichever teacher
        width = jax.eval_shape(lambda: p.teachers["t"].apply(teachers["t"], jnp.zeros(shape), train=False))[1][feat]
        bank = jax.random.normal(jax.random.key(1), (int(inv.memory_bank.size), width.shape[-1]))
    labels = jax.nn.one_hot(jnp.arange(batch) % 10, 10)
    inv_step, init, _ = make_inversion_step(p, "mel", teachers, inv, shape)

    def step(x, opt, rng):
        x, opt, m = inv_step(x, opt, labels, rng, bank)
        return x, opt, m["loss"]

    x, opt = init(-68 + 25 * jax.random.normal(jax.random.key(2), shape))
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    x, opt, loss = step(x, opt, jax.random.key(3))
    loss.block_until_ready()
    compile_s = time.perf_counter() - t0
    times = []
    for k in range(warmup + steps):
        t0 = time.perf_counter()
        x, opt, loss = step(x, opt, jax.random.key(10 + k))
        loss.block_until_ready()
        if k >= warmup:
            times.append(time.perf_counter() - t0)
    med = float(np.median(times))
    return {"stage": stage, "batch": batch, "views": int(inv.get("views", 1)), "shape": list(shape),
            "first_step_s (compile)": compile_s, "median_step_s": med, "steps_per_s": 1 / med,
            "sample_steps_per_s": batch / med, "inversion_steps_per_batch": int(inv.steps),
            "synthetic_samples_per_s": batch / (int(inv.steps) * med),
            "load_before": load0, "load_after": os.getloadavg()[0], "timed_steps": steps}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=40)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--stages", default="inv_di,inv_frami,inv_adv", help="configs/frami.py invert stages")
    ap.add_argument("--out", default=str(OUT), help="directory for inversion_step.json and .md")
    a = ap.parse_args()
    out = pathlib.Path(a.out)
    rows = [bench(s, a.batch, a.steps, a.warmup) for s in a.stages.split(",")]
    meta = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": f"{os.cpu_count()}-core shared CPU, no GPU", "jax": jax.__version__,
            "devices": [str(d) for d in jax.devices()]}
    out.mkdir(parents=True, exist_ok=True)
    (out / "inversion_step.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [f"# Inversion step speed ({meta['date']}, {meta['machine']}, jax {meta['jax']})", "",
             "Written by benchmarks/inversion_step.py (configs/frami.py, variant=local, data=fsdd).", "",
             "| stage | views | batch | input [T, F] | median s/step | steps/s | sample-steps/s | "
             "steps/batch | synthetic samples/s | load avg (before/after) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['stage']} | {r['views']} | {r['batch']} | {r['shape'][1:]} | {r['median_step_s']:.3f} | "
                     f"{r['steps_per_s']:.2f} | {r['sample_steps_per_s']:.1f} | {r['inversion_steps_per_batch']} | "
                     f"{r['synthetic_samples_per_s']:.2f} | {r['load_before']:.1f} / {r['load_after']:.1f} |")
    (out / "inversion_step.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
