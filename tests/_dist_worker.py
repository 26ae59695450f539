"""One process of the multi-process test (tests/test_distributed.py), and its config.

This file is both
  * a kdjax config file: `get_config("stage=kd,steps=4,num_shards=2")` is one stage of
    the FSDD main job (configs/fsdd.py) shrunk for a test: a few steps on a strided
    subset of real FSDD clips, and a tiny teacher so the whole test fits in ~2 minutes
    on 2 shared CPU cores;
  * a launcher: `python tests/_dist_worker.py --config tests/_dist_worker.py:... --workdir W
    [--coordinator_address 127.0.0.1:PORT --num_processes 2 --process_id I
    --cpu_collectives gloo]` runs `kdjax.main` exactly as users do.
The number of simulated CPU devices per process comes from the caller's XLA_FLAGS.
"""

from __future__ import annotations

import copy
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Small enough to train in seconds; the KD stage's teacher must have the same architecture.
TINY_TEACHER = dict(stem_width=32, widths=(32, 48), strides=(2, 2), stem_stride=2, dropout=0.1)


def get_config(arg: str | None = None):
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    from configs import common, fsdd

    a = common.parse_arg(arg, stage="kd", steps=4, num_shards=0, compute_dtype="float32",
                         batch_size=8, max_examples=64)
    c = copy.deepcopy(fsdd.get_config("variant=tiny,seeds=1").stages[a.stage])
    with c.unlocked():
        c.num_steps = a.steps
        c.batch_size = a.batch_size
        c.eval_batch_size = 16
        c.eval_every = a.steps  # one validation pass, at the end
        c.checkpoint_every = 2
        c.log_every = 1
        c.quiet = True
        c.data.kw = dict(max_examples=a.max_examples)
        c.data.num_shards = a.num_shards
        c.compute_dtype = a.compute_dtype
        if a.stage == "teacher":
            c.models.teacher.kw = dict(TINY_TEACHER)
        if "teacher" in c.teachers:
            c.teachers.teacher.kw = dict(TINY_TEACHER)
            c.teachers.teacher.checkpoint = "{parent}/teacher"  # workdirs are siblings
    return c


def _gloo_on_loopback() -> None:
    """Makes gloo's TCP pairs bind 127.0.0.1 (by default it uses the address the machine's
    hostname resolves to): the test's network traffic stays on loopback. jax exposes no
    option for this, so the (private) factory jax calls is wrapped; test-only."""
    import functools

    from jax._src import xla_bridge

    make = getattr(xla_bridge._jax, "make_gloo_tcp_collectives", None)
    if make is not None:
        xla_bridge._jax.make_gloo_tcp_collectives = functools.partial(make, hostname="127.0.0.1")


if __name__ == "__main__":
    os.chdir(REPO)
    sys.path.insert(0, REPO)
    if "--coordinator_address" in sys.argv:
        _gloo_on_loopback()
    from kdjax.main import run

    run()
