"""Offline KD step speed (issue #22): the main job's KD train step (configs/fsdd.py kd stage,
default sizes, batch 32, mixup 0.4) with the live frozen teacher vs with its cached logits
(`teachers.teacher.cached`, read from the batch; mixup mixes them as probabilities).

Both jitted steps (kdjax.train.step.jit_train_step) run in one process on the same 4 random
batches (random teacher weights: speed does not depend on them), compiled and warmed up (3
steps), then in alternating blocks of 5 steps so machine load hits both alike; the time to a
host-visible loss (`block_until_ready`) per step; medians and quartiles reported.
Run: `JAX_PLATFORMS=cpu STEPS=60 python benchmarks/offline_kd_step.py` (about 1 minute).
Sizes for the smoke test (tests/test_benchmarks_smoke.py): `BATCH` (default 32) and
`VARIANT=tiny` (configs/fsdd.py's variant=tiny: its 10x smaller teacher; default `default`).
Results: benchmarks/results/offline_kd.md.
"""

import copy
import json
import os
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from configs import fsdd  # noqa: E402
from kdjax.train.forward import init_variables, resolve  # noqa: E402
from kdjax.train.program import build_program
from kdjax.train.setup import make_optimizer
from kdjax.train.state import TrainState
from kdjax.train.step import jit_train_step

B, STEPS, BLOCK = int(os.environ.get("BATCH", 32)), int(os.environ.get("STEPS", 30)), 5
VARIANT = os.environ.get("VARIANT", "default")
live = fsdd.get_config(f"stage=kd,variant={VARIANT}").stages.kd
cached = copy.deepcopy(live)
with cached.unlocked():
    cached.teachers.teacher.cached = {"logits": "unused.npy"}
    cached.teachers.teacher.cached_mixup_temperature = 4.0
rng = np.random.default_rng(0)
batches = [
    {
        "audio": (0.1 * rng.standard_normal((B, 8000))).astype(np.float32),
        "labels": np.eye(10, dtype=np.float32)[rng.integers(0, 10, B)],
        "mask": np.ones(B, np.float32),
        "teacher/teacher/logits": (3 * rng.standard_normal((B, 10))).astype(np.float32),
    }
    for _ in range(4)
]
arms = {}
for name, cfg in (("live", live), ("cached", cached)):
    prog = build_program(cfg, 10, 8000)
    ns = {"features": prog.features(jnp.zeros((2, 8000), jnp.float32))}
    teachers = {
        n.name: n.module.init(jax.random.key(10), resolve(ns, n.input), train=False)
        for n in prog.nodes
        if not n.trainable
    }
    params, stats = init_variables(prog, jax.random.key(0), 8000, teachers)
    tx, _ = make_optimizer(cfg)
    state = TrainState.create(params=params, batch_stats=stats, tx=tx)
    step = jit_train_step(prog)
    bs = [
        jax.device_put(
            {k: v for k, v in b.items() if name == "cached" or not k.startswith("teacher/")}
        )
        for b in batches
    ]
    arms[name] = dict(step=step, state=state, teachers=teachers, batches=bs, times=[])
    for i in range(3):  # compile + warm-up
        arms[name]["state"], m = step(arms[name]["state"], teachers, bs[i % 4], jax.random.key(0))
        jax.block_until_ready(m["loss"])
for _ in range(STEPS // BLOCK):
    for a in arms.values():
        for i in range(BLOCK):
            t = time.perf_counter()
            a["state"], m = a["step"](
                a["state"], a["teachers"], a["batches"][i % 4], jax.random.key(0)
            )
            jax.block_until_ready(m["loss"])
            a["times"].append(time.perf_counter() - t)
out = {
    n: {
        "median_ms": 1e3 * float(np.median(a["times"])),
        "q25_ms": 1e3 * float(np.percentile(a["times"], 25)),
        "q75_ms": 1e3 * float(np.percentile(a["times"], 75)),
        "steps": len(a["times"]),
    }
    for n, a in arms.items()
}
out["speedup_median"] = out["live"]["median_ms"] / out["cached"]["median_ms"]
out["batch"], out["variant"] = B, VARIANT
out["loadavg"] = os.getloadavg()
out["jax"] = jax.__version__
print(json.dumps(out, indent=1))
