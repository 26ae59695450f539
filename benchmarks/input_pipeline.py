"""Input-pipeline throughput: grain `pipeline.train_dataset` over the real ESC-10 folds.

Setting: ESC-10 train_fold1 (320 clips, 16 kHz FLAC), 5 s clips (80000 samples),
batch 32, random crop, read_threads=1 (STACK-NOTES), decoding from disk every
epoch (cache=False) and from memory (cache=True). Reports batches/s after a
warm-up, and writes `benchmarks/results/input_pipeline.json`.

The main job's KD train step (configs/fsdd.py, batch 32) is timed in the same run, and
each setting's batches/s is reported over that step rate (`over_kd_step_rate`).

Run: `python benchmarks/input_pipeline.py [--num_batches=40]` (absl; ~1 min on 2 cores).
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import platform
import sys
import time

from absl import app, flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from kdjax.data import esc50, pipeline  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_batches", 40, "timed batches per setting")
flags.DEFINE_integer("warmup", 3, "untimed batches first")
flags.DEFINE_integer("batch_size", 32, "pipeline batch size")
flags.DEFINE_integer("kd_steps", 30, "timed KD train steps (after 5 untimed ones)")
flags.DEFINE_string("out", str(pathlib.Path(__file__).parent / "results" / "input_pipeline.json"), "result file")


def measure(src, read_threads: int) -> dict:
    ds = pipeline.train_dataset(src, clip_samples=5 * 16000, batch_size=FLAGS.batch_size, seed=0,
                                read_threads=read_threads)
    it = iter(ds)
    for _ in range(FLAGS.warmup):
        next(it)
    t = time.perf_counter()
    for _ in range(FLAGS.num_batches):
        b = next(it)
    dt = time.perf_counter() - t
    assert b["audio"].shape == (FLAGS.batch_size, 80000)
    return {"read_threads": read_threads, "batches": FLAGS.num_batches, "seconds": round(dt, 3),
            "batches_per_s": round(FLAGS.num_batches / dt, 2),
            "clips_per_s": round(FLAGS.batch_size * FLAGS.num_batches / dt, 1)}


def kd_steps_per_s(num_steps: int = 30) -> dict:
    """The main job's KD train step (configs/fsdd.py kd stage, batch 32), timed in this process."""
    import jax
    import jax.numpy as jnp

    from configs import fsdd
    from kdjax.train.forward import init_variables, resolve
    from kdjax.train.program import build_program
    from kdjax.train.setup import make_optimizer
    from kdjax.train.state import TrainState
    from kdjax.train.step import jit_train_step

    cfg = fsdd.get_config().stages.kd
    spec = build_program(cfg, 10, 8000)
    params, stats = init_variables(spec, jax.random.key(0), 8000)
    tx, _ = make_optimizer(cfg)
    state = TrainState.create(params=params, batch_stats=stats, tx=tx)
    # A random frozen teacher on its own input (its key path in the program's namespace).
    (tnode,) = [n for n in spec.nodes if not n.trainable]
    tfeats = resolve({"features": spec.features(jnp.zeros((2, 8000)))}, tnode.input)
    teachers = {tnode.name: jax.jit(lambda k: tnode.module.init(k, tfeats, train=False))(jax.random.key(1))}
    b = cfg.batch_size
    batch = {"audio": 0.1 * jax.random.normal(jax.random.key(2), (b, 8000)),
             "labels": jax.nn.one_hot(jnp.arange(b) % 10, 10), "mask": jnp.ones(b)}
    step = jit_train_step(spec)
    for _ in range(5):
        state, m = step(state, teachers, batch, jax.random.key(3))
    m["loss"].block_until_ready()
    t = time.perf_counter()
    for _ in range(num_steps):
        state, m = step(state, teachers, batch, jax.random.key(3))
    m["loss"].block_until_ready()
    dt = time.perf_counter() - t
    return {"batch_size": b, "steps": num_steps, "steps_per_s": round(num_steps / dt, 2),
            "load_avg_1min": os.getloadavg()[0]}


def main(argv):
    del argv
    kd = kd_steps_per_s(FLAGS.kd_steps)
    print(json.dumps({"kd_step": kd}))
    results = []
    for cache in (False, True):
        src = esc50.source("train_fold1", subset="esc10", cache=cache)
        for threads in (1, 2):
            r = measure(src, threads)
            r["cache"] = cache
            r["over_kd_step_rate"] = round(r["batches_per_s"] / kd["steps_per_s"], 2)
            r["load_avg_1min"] = os.getloadavg()[0]
            print(json.dumps(r))
            results.append(r)
    out = {
        "benchmark": "grain pipeline.train_dataset over ESC-10 train_fold1, 16 kHz, 5 s clips, "
                     f"batch {FLAGS.batch_size}",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpu_count": os.cpu_count(), "processor": platform.processor()},
        "note": "2-core machine shared with other running work (tests/training by other engineers): "
                "numbers are noisy lower bounds. cache=False decodes FLAC from disk each epoch; "
                "cache=True decodes once (first epoch, during warm-up/first pass) then reads memory.",
        "main_job_kd_step": kd,
        "target": "batches/s >= 3x the main job's KD train steps/s (issue #4)",
        "results": results,
    }
    pathlib.Path(FLAGS.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(FLAGS.out).write_text(json.dumps(out, indent=2) + "\n")
    print("wrote", FLAGS.out)


if __name__ == "__main__":
    app.run(main)
