"""kdjax entry point.

    python -m kdjax.main --config configs/fsdd.py[:args] --workdir DIR [--config.x=y ...]

A config with `stages` runs them all (see kdjax.train.stages); any other config
is one training run (kdjax.train.loop.train_and_evaluate). Re-running the same
command resumes from the checkpoints in DIR. Distributed flags (all optional)
initialise JAX's multi-process runtime before anything else touches devices.
"""

from __future__ import annotations

import sys

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/<recipe>.py[:args]).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, logs and results go.")
_COORD = flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-process runs).")
_NPROC = flags.DEFINE_integer("num_processes", None, "Number of processes (multi-process runs).")
_PID = flags.DEFINE_integer("process_id", None, "This process's index (multi-process runs).")
_LOCAL_DEVICES = flags.DEFINE_string("local_device_ids", None, "Comma-separated local device ids to use.")
_CPU_COLLECTIVES = flags.DEFINE_string("cpu_collectives", None, "CPU collectives for multi-process CPU runs (e.g. gloo).")


def _one_line(e: BaseException) -> str:
    return f"kdjax: error: {type(e).__name__}: {e}".splitlines()[0] if str(e) else f"kdjax: error: {type(e).__name__}"


def main(argv) -> int:
    del argv
    import jax

    if _CPU_COLLECTIVES.value:
        jax.config.update("jax_cpu_collectives_implementation", _CPU_COLLECTIVES.value)
    if _COORD.value or _NPROC.value:
        ids = [int(i) for i in _LOCAL_DEVICES.value.split(",")] if _LOCAL_DEVICES.value else None
        jax.distributed.initialize(_COORD.value, _NPROC.value, _PID.value, local_device_ids=ids)
    from kdjax.data.audio import AudioError, DatasetNotFoundError
    from kdjax.train.loop import Preempted, TrainingDivergedError, train_and_evaluate
    from kdjax.train.stages import run_stages

    cfg = _CONFIG.value
    try:
        if "stages" in cfg:
            run_stages(cfg, _WORKDIR.value)
        else:
            train_and_evaluate(cfg, _WORKDIR.value)
    except Preempted as e:
        print(f"kdjax: {e}", file=sys.stderr)
        return 143
    except (TrainingDivergedError, AudioError, DatasetNotFoundError, FileNotFoundError, KeyError, ValueError) as e:
        print(_one_line(e), file=sys.stderr)
        return 1
    return 0


def run() -> None:
    """Parses flags (turning an unknown --config.key into a one-line error) and runs main."""
    flags.mark_flags_as_required(["config", "workdir"])
    try:
        app.run(main)
    except AttributeError as e:  # ml_collections: unknown override key on a locked config
        print(f"kdjax: error: unknown config key: {e}".splitlines()[0], file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    run()
