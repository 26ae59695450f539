"""Multi-process data parallelism on JAX's distributed runtime, on localhost CPUs.

Two processes (2 simulated CPU devices each, gloo collectives, coordinator on
127.0.0.1) train the main job's KD student (configs/fsdd.py stage "kd", shrunk
by tests/_dist_worker.py, with a tiny teacher trained first in this process)
through `python -m kdjax.main`-style entry points, and must reach the same
parameters as ONE process with 4 devices on the same global batches.

Same global batches: a multi-process global batch is the concatenation of the
processes' batches (process 0's rows first), each process reading its own data
shard. The 1-process run sets `data.num_shards=2`, so it reads both shards
itself and concatenates their batches in the same order (kdjax.data.pipeline
`train_dataset(shard_index=[0, 1])`): the same examples, crops and order, with
no test-only code path in the loop. Remaining differences are float32
reduction order (gloo all-reduce vs in-process), hence a tolerance.

A checkpoint written by the 2-process run is then restored in this (single)
process, which has 8 devices: a different topology.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(REPO, "tests", "_dist_worker.py")
STEPS = 4


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int) -> dict[str, str]:
    env = dict(os.environ)
    # XLA's default optimisation, not tests/conftest.py's FAST_COMPILE: without LLVM's passes the
    # 2-process and 1-process losses drift apart by ~7e-4 relative within 4 steps (measured).
    env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               PYTHONPATH=REPO, PYTHONUNBUFFERED="1")
    return env


def _cmd(workdir, arg: str, *extra: str) -> list[str]:
    return [sys.executable, WORKER, "--config", f"{WORKER}:{arg}", "--workdir", str(workdir), *extra]


def _wait(procs, logs, timeout=300):
    t0 = time.time()
    for p in procs:
        try:
            p.wait(timeout=max(1.0, timeout - (time.time() - t0)))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("distributed run timed out:\n" + "\n".join(_tail(f) for f in logs))
    for p, f in zip(procs, logs, strict=True):
        assert p.returncode == 0, f"worker exited with {p.returncode}:\n{_tail(f)}"


def _tail(path, n=3000) -> str:
    with open(path) as f:
        lines = [x for x in f.read().splitlines() if not x.startswith(("I1", "I0", "W1", "W0"))]
    return f"--- {path}\n" + "\n".join(lines)[-n:]


def _restore_host(workdir, step: int):
    """(state, best, meta) of a kdjax checkpoint as NumPy arrays (any topology)."""
    import jax
    import orbax.checkpoint as ocp

    ckpt = os.path.join(os.path.abspath(workdir), "ckpt")
    targets = {}
    for item in ("state", "best"):
        with ocp.StandardCheckpointer() as c:
            md = c.metadata(os.path.join(ckpt, str(step), item)).item_metadata.tree
        targets[item] = jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), md)
    mngr = ocp.CheckpointManager(ckpt, item_names=("state", "best", "meta"))
    r = mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(targets["state"]), best=ocp.args.StandardRestore(targets["best"]),
        meta=ocp.args.JsonRestore()))
    mngr.close()
    return r.state, r.best, r.meta


def _assert_close(a, b, what, rtol=1e-4, atol=1e-5):
    import jax

    la, lb = jax.tree.leaves_with_path(a), jax.tree.leaves_with_path(b)
    assert [k for k, _ in la] == [k for k, _ in lb], f"{what}: different trees"
    for (k, x), (_, y) in zip(la, lb, strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol,
                                   err_msg=f"{what}{jax.tree_util.keystr(k)}")


def _train_losses(workdir) -> list[float]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return [r["train/loss"] for r in rows if "train/loss" in r]


def test_two_processes_match_one_process_and_checkpoint_restores_in_one(tmp_path, data_dir):
    import jax

    sys.path.insert(0, REPO)
    from kdjax.train import loop
    from kdjax.train.checkpoint import Checkpointer, load_best_variables
    from tests import _dist_worker

    # 1. A tiny teacher, trained single-process (here: this pytest process, 8 devices).
    loop.train_and_evaluate(_dist_worker.get_config("stage=teacher,steps=2"), str(tmp_path / "teacher"))

    # 2. The KD student: 2 processes x 2 devices (gloo, coordinator on 127.0.0.1), and
    #    concurrently 1 process x 4 devices reading both data shards (num_shards=2).
    port = _free_port()
    logs, procs = [], []
    for pid in range(2):
        env = _env(2) | {"JAX_COORDINATOR_BIND_ADDRESS": f"127.0.0.1:{port}"}
        logs.append(tmp_path / f"proc{pid}.log")
        procs.append(subprocess.Popen(
            _cmd(tmp_path / "kd_2proc", f"stage=kd,steps={STEPS}", "--coordinator_address", f"127.0.0.1:{port}",
                 "--num_processes", "2", "--process_id", str(pid), "--cpu_collectives", "gloo"),
            cwd=REPO, env=env, stdout=open(logs[-1], "w"), stderr=subprocess.STDOUT))
    logs.append(tmp_path / "single.log")
    procs.append(subprocess.Popen(_cmd(tmp_path / "kd_1proc", f"stage=kd,steps={STEPS},num_shards=2"),
                                  cwd=REPO, env=_env(4), stdout=open(logs[-1], "w"), stderr=subprocess.STDOUT))
    _wait(procs, logs)

    two, one = tmp_path / "kd_2proc", tmp_path / "kd_1proc"
    # Only process 0 writes logs and results.
    assert (two / "result.json").exists() and (two / "metrics.jsonl").exists()
    # Same loss at every step, same parameters, optimiser state and BatchNorm statistics.
    np.testing.assert_allclose(_train_losses(two), _train_losses(one), rtol=1e-5)
    assert len(_train_losses(two)) == STEPS
    for step in (2, STEPS):
        s2, b2, m2 = _restore_host(two, step)
        s1, b1, m1 = _restore_host(one, step)
        assert int(s2["step"]) == int(s1["step"]) == step
        _assert_close(s2["params"], s1["params"], f"params@{step}")
        _assert_close(s2["opt_state"], s1["opt_state"], f"opt_state@{step}")
        _assert_close(s2["batch_stats"], s1["batch_stats"], f"batch_stats@{step}", rtol=1e-3, atol=1e-4)
        assert m2["data_iterator"] == m1["data_iterator"]
    # Evaluation gathers every process's examples: identical metrics.
    r2, r1 = (json.loads((w / "result.json").read_text())["models"]["student"] for w in (two, one))
    for split in ("validation", "test"):
        assert r2[split]["accuracy"] == r1[split]["accuracy"]
        assert r2[split]["confusion_matrix"] == r1[split]["confusion_matrix"]
        assert np.sum(r2[split]["confusion_matrix"]) == 60  # every clip once (300 clips, stride 5)

    # 3. The 2-process checkpoint restores in one process with another device count (8),
    #    into the loop's own replicated targets, and as a teacher (load_best_variables).
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    assert jax.process_count() == 1
    mesh = jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    repl = NamedSharding(mesh, P())
    host_state, host_best, _ = _restore_host(two, STEPS)
    target_state = jax.tree.map(lambda x: jax.device_put(np.zeros_like(x), repl), host_state)
    target_best = jax.tree.map(lambda x: jax.device_put(np.zeros_like(x), repl), host_best)
    ck = Checkpointer(two / "ckpt")
    assert ck.latest_step() == STEPS
    state, best, meta = ck.restore(STEPS, target_state, target_best)
    ck.close()
    _assert_close(state, host_state, "restored state", rtol=0, atol=0)
    _assert_close(best, host_best, "restored best", rtol=0, atol=0)
    assert all(x.sharding == repl for x in jax.tree.leaves(state))
    assert meta["step"] == STEPS and meta["data_iterator"] == {"next_index": STEPS}
    as_teacher = load_best_variables(two, "student")
    _assert_close(as_teacher["params"], host_best["student"]["params"], "best params", rtol=0, atol=0)


def test_bfloat16_compute_dtype_runs_a_step_with_float32_params_and_state():
    """compute_dtype="bfloat16": the model computes in bf16 (mixed precision for GPUs/TPUs),
    parameters, BatchNorm statistics and optimiser state stay float32, loss is finite."""
    import jax
    import jax.numpy as jnp

    sys.path.insert(0, REPO)
    from kdjax.train.forward import init_variables
    from kdjax.train.program import build_program
    from kdjax.train.setup import make_optimizer
    from kdjax.train.state import TrainState
    from kdjax.train.step import jit_train_step
    from tests import _dist_worker

    cfg = _dist_worker.get_config("stage=student,compute_dtype=bfloat16")
    spec = build_program(cfg, 10, 8000)
    params, stats = init_variables(spec, jax.random.key(0), 8000)
    tx, _ = make_optimizer(cfg)
    state = TrainState.create(params=params, batch_stats=stats, tx=tx)
    batch = {"audio": jax.random.normal(jax.random.key(1), (8, 8000)) * 0.1,
             "labels": jax.nn.one_hot(jnp.arange(8) % 10, 10), "mask": jnp.ones(8)}

    # The model really computes in bfloat16 (its convolutions' matmuls), and returns float32.
    module, feats = spec.models["student"], jax.jit(spec.features)(batch["audio"])["student"]
    assert feats.dtype == jnp.float32  # front-end in float32
    apply = jax.jit(lambda p, x: module.apply({"params": p, "batch_stats": stats["student"]}, x, train=False))
    assert "bf16" in str(jax.make_jaxpr(apply)(params["student"], feats))
    logits, out_feats = apply(params["student"], feats)
    assert logits.dtype == jnp.float32 and all(v.dtype == jnp.float32 for v in out_feats.values())

    step = jit_train_step(spec)
    for _ in range(2):
        state, m = step(state, {}, batch, jax.random.key(2))
    assert np.isfinite(float(m["loss"])) and np.isfinite(float(m["grad_norm"]))
    for what, tree in (("params", state.params), ("batch_stats", state.batch_stats),
                       ("opt_state", state.opt_state)):
        leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
        assert leaves and all(x.dtype == jnp.float32 for x in leaves), what
