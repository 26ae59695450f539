"""MRKD train-step cost: the joint step (K peers + mutual KL in one jitted step) vs K alone steps.

What is timed: kdjax's real `train_step` (kdjax.train.step) built from `configs/mrkd.py`
(variant=local; `--variant=tiny`: its 1-block peers, the smoke test's size) with
`build_program`, on random waveforms of the data set's clip length:
  joint          the `joint` stage: K peers, each with its own jnp front-end, per-peer CE +
                 mutual_kl over `peers.logits`, one AdamW update of all peers.
  alone_<rep>    one peer alone (CE only), its own jitted step (what K separate runs execute).
  alone_shared   the `alone` stage: the K peers CE-only side by side in one step.
Reported: per step the median wall time (ms) over the timed steps, after 3 warm-up steps; the
steps run in interleaved blocks (joint, alone_<rep>..., alone_shared, repeated) so the load of
the shared 2-core machine hits all alike; `ratio_joint_over_sum_alone` =
median(joint) / sum over peers of median(alone_<rep>). Memory: XLA's compiled-step
`memory_analysis()` (argument + output + temporary buffers, bytes; peak live memory of the step
on the device = the CPU here) per step, and the process's peak resident set (VmHWM, all steps
together, includes the JAX runtime). The load average is recorded per block.

Run: `python benchmarks/mrkd_step.py --data=esc10 --batch=32 --steps=10`
(writes benchmarks/results/mrkd_step_<data>.json and .md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from configs import mrkd  # noqa: E402
from kdjax.train.forward import init_variables  # noqa: E402
from kdjax.train.program import build_program  # noqa: E402
from kdjax.train.setup import make_optimizer  # noqa: E402
from kdjax.train.state import TrainState  # noqa: E402
from kdjax.train.step import jit_train_step  # noqa: E402


def _vmhwm_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _build(stage_cfg, num_classes, sr, clip_samples, batch):
    spec = build_program(stage_cfg, num_classes, sr)
    params, stats = init_variables(spec, jax.random.key(0), clip_samples)
    tx, _ = make_optimizer(stage_cfg)
    state = TrainState.create(params=params, batch_stats=stats, tx=tx)
    step = jit_train_step(spec)
    rng = np.random.default_rng(0)
    b = {"audio": (0.1 * rng.standard_normal((batch, clip_samples))).astype(np.float32),
         "labels": np.eye(num_classes, dtype=np.float32)[rng.integers(0, num_classes, batch)],
         "mask": np.ones(batch, np.float32)}
    compiled = step.lower(state, {}, b, jax.random.key(1)).compile()
    ma = compiled.memory_analysis()
    mem = None
    if ma is not None:
        mem = {k: int(getattr(ma, k)) for k in ("argument_size_in_bytes", "output_size_in_bytes",
                                                "temp_size_in_bytes", "alias_size_in_bytes")
               if hasattr(ma, k)}
        mem["total_bytes"] = mem.get("argument_size_in_bytes", 0) + mem.get("output_size_in_bytes", 0) \
            + mem.get("temp_size_in_bytes", 0) - mem.get("alias_size_in_bytes", 0)
    return {"step": step, "state": state, "batch": b, "memory": mem,
            "params": int(sum(x.size for x in jax.tree.leaves(params)))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="esc10")
    ap.add_argument("--variant", default="local", choices=("local", "tiny"),
                    help="configs/mrkd.py variant (tiny: its 1-block peers, the smoke test's size)")
    ap.add_argument("--reps", default="logmel+mfcc+stft")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per configuration")
    ap.add_argument("--block", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    cfg = mrkd.get_config(f"variant={args.variant},data={args.data},reps={args.reps},alone=separate")
    reps = args.reps.split("+")
    joint = cfg.stages.joint
    sr = 8000 if args.data == "fsdd" else 16000
    clip = int(round(joint.data.clip_seconds * sr))
    num_classes = 12 if args.data == "sc12" else 10
    shared = mrkd.get_config(f"variant={args.variant},data={args.data},reps={args.reps}").stages.alone
    kinds = {"joint": joint} | {f"alone_{r}": cfg.stages[f"alone_{r}"] for r in reps} | {"alone_shared": shared}
    runs = {}
    for k, c in kinds.items():
        t = time.time()
        runs[k] = _build(c, num_classes, sr, clip, args.batch)
        runs[k]["compile_s"] = time.time() - t
    times = {k: [] for k in runs}
    loads = []

    def one(k):
        r = runs[k]
        t = time.perf_counter()
        r["state"], m = r["step"](r["state"], {}, r["batch"], jax.random.key(1))
        jax.block_until_ready((r["state"], m))
        return time.perf_counter() - t

    for k in runs:  # warm-up
        for _ in range(3):
            one(k)
    done = 0
    while done < args.steps:
        n = min(args.block, args.steps - done)
        for k in runs:
            for _ in range(n):
                times[k].append(one(k))
        loads.append(os.getloadavg()[0])
        done += n
    med = {k: 1000 * float(np.median(v)) for k, v in times.items()}
    sum_alone = sum(med[f"alone_{r}"] for r in reps)
    out = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()}-core shared CPU ({platform.processor() or platform.machine()}), no GPU",
        "jax": jax.__version__, "variant": args.variant, "data": args.data, "reps": reps,
        "batch": args.batch,
        "clip_samples": clip, "timed_steps": args.steps,
        "load_avg_1min_per_block": loads,
        "median_ms": med,
        "all_ms": {k: [1000 * x for x in v] for k, v in times.items()},
        "sum_alone_ms": sum_alone,
        "ratio_joint_over_sum_alone": med["joint"] / sum_alone,
        "ratio_alone_shared_over_sum_alone": med["alone_shared"] / sum_alone,
        "compile_s": {k: r["compile_s"] for k, r in runs.items()},
        "xla_memory_bytes": {k: r["memory"] for k, r in runs.items()},
        "params": {k: r["params"] for k, r in runs.items()},
        "process_peak_rss_mb": _vmhwm_mb(),
    }
    os.makedirs(args.out, exist_ok=True)
    base = pathlib.Path(args.out) / f"mrkd_step_{args.data}"
    base.with_suffix(".json").write_text(json.dumps(out, indent=1))
    lines = [f"# MRKD step cost ({args.data}, batch {args.batch}, {clip} samples, reps {','.join(reps)})", "",
             f"{out['date']}, {out['machine']}, jax {out['jax']}, load (1 min) per block {loads}", "",
             "| step | median ms | XLA step memory MB (args+out+temp) | params | compile s |", "|---|---|---|---|---|"]
    for k in runs:
        mem = out["xla_memory_bytes"][k]
        mb = f"{mem['total_bytes'] / 2**20:.1f}" if mem else "n/a"
        lines.append(f"| {k} | {med[k]:.1f} | {mb} | {out['params'][k]:,d} | {out['compile_s'][k]:.1f} |")
    lines += ["", f"joint / sum of alone steps: {out['ratio_joint_over_sum_alone']:.3f} "
              f"(sum of alone {sum_alone:.1f} ms); alone_shared / sum of alone: "
              f"{out['ratio_alone_shared_over_sum_alone']:.3f}; process peak RSS "
              f"{out['process_peak_rss_mb']:.0f} MB (all steps in one process).", ""]
    base.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
