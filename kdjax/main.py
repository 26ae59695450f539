"""kdjax entry point.

    python -m kdjax.main --config configs/fsdd.py[:args] --workdir DIR [--config.x=y ...]

A config with `stages` runs them all (see kdjax.train.stages); any other config
is one run of its `kind` (train / invert / cache; kdjax.train.stages.run_config). Re-running the same
command resumes from the checkpoints in DIR. Distributed flags (all optional)
initialise JAX's multi-process runtime before anything else touches devices.
"""

from __future__ import annotations

import sys

from kdjax import _extras

_extras.require("kdjax.main")  # without kdjax[train]: a one-line error

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/<recipe>.py[:args]).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, logs and results go.")
_COORD = flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-process runs).")
_NPROC = flags.DEFINE_integer("num_processes", None, "Number of processes (multi-process runs).")
_PID = flags.DEFINE_integer("process_id", None, "This process's index (multi-process runs).")
_LOCAL_DEVICES = flags.DEFINE_string("local_device_ids", None, "Comma-separated local device ids to use.")
_CPU_COLLECTIVES = flags.DEFINE_string("cpu_collectives", None, "CPU collectives for multi-process CPU runs (e.g. gloo).")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False,
    "Initialise JAX's multi-process runtime with the cluster auto-detected (Cloud TPU VM pod "
    "slices, SLURM, Open MPI): every worker runs the same command (launch/tpu_vm.sh). Implied "
    "by --coordinator_address/--num_processes.")


def _one_line(e: BaseException) -> str:
    return f"kdjax: error: {type(e).__name__}: {e}".splitlines()[0] if str(e) else f"kdjax: error: {type(e).__name__}"


def main(argv) -> int:
    del argv
    import jax
    from absl import logging

    if not flags.FLAGS["verbosity"].present:  # orbax logs every save at INFO
        logging.set_verbosity(logging.WARNING)

    if _CPU_COLLECTIVES.value:
        jax.config.update("jax_cpu_collectives_implementation", _CPU_COLLECTIVES.value)
    if _COORD.value or _NPROC.value or _DISTRIBUTED.value:
        ids = [int(i) for i in _LOCAL_DEVICES.value.split(",")] if _LOCAL_DEVICES.value else None
        jax.distributed.initialize(_COORD.value, _NPROC.value, _PID.value, local_device_ids=ids)
    from kdjax.data.audio import AudioError, DatasetNotFoundError
    from kdjax.train.loop import Preempted
    from kdjax.train.setup import TrainingDivergedError
    from kdjax.train.stages import run_config, run_stages

    cfg = _CONFIG.value
    try:
        if "stages" in cfg:
            run_stages(cfg, _WORKDIR.value)
            if jax.process_index() == 0:  # <workdir>/report.md with its pictures (kdjax.report)
                from kdjax.report import write_report

                try:
                    rep = write_report(_WORKDIR.value, config=cfg)
                    from kdjax.report.render import verdict_lines

                    for line in verdict_lines(rep):  # the claim's verdict, last thing on screen
                        if line:
                            print(line.replace("**", "").replace("`", ""), flush=True)
                    print(f"report: {rep['files'][1]}", flush=True)
                except (OSError, KeyError, ValueError) as e:  # the runs are done; say why no report
                    print(f"kdjax: report not written: {e}", file=sys.stderr)
        else:
            run_config(cfg, _WORKDIR.value)
    except Preempted as e:
        print(f"kdjax: {e}", file=sys.stderr)
        return 143
    except (TrainingDivergedError, AudioError, DatasetNotFoundError, FileNotFoundError, KeyError, ValueError) as e:
        print(_one_line(e), file=sys.stderr)
        return 1
    return 0


def _flag_value(argv: list[str], name: str) -> str | None:
    for k, a in enumerate(argv):
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
        if a == f"--{name}" and k + 1 < len(argv):
            return argv[k + 1]
    return None


def check_config_overrides(argv: list[str]) -> str | None:
    """Loads the --config file and checks every --config.<path>=value override exists.

    Returns a one-line error (missing config file, bad config argument, unknown key
    naming the full path and the fields that exist there) or None when all is well.
    """
    import importlib.util
    import os

    spec = _flag_value(argv, "config")
    if spec is None:
        return None
    path, _, arg = spec.partition(":")
    if not os.path.isfile(path):
        return f"kdjax: error: config file {path!r} not found (expected e.g. configs/fsdd.py)"
    try:
        mod_spec = importlib.util.spec_from_file_location("_kdjax_config_check", path)
        mod = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(mod)
        cfg = mod.get_config(arg) if arg else mod.get_config()
    except Exception as e:  # the config file's own error, e.g. an unknown config argument
        return f"kdjax: error: {path}: {type(e).__name__}: {e}".splitlines()[0]
    for a in argv:
        if not a.startswith("--config."):
            continue
        key = a[len("--config."):].split("=", 1)[0]
        node, parts = cfg, key.split(".")
        for n, part in enumerate(parts):
            fields = list(node.keys()) if hasattr(node, "keys") else None
            if fields is None or part not in fields:
                where = ".".join(parts[:n]) or "the config"
                have = f"; fields there: {sorted(fields)}" if fields else ""
                return f"kdjax: error: unknown config key {key!r}: {where} has no field {part!r}{have}"
            node = node[part]
    return None


def _parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing that turns config errors (unknown key, bad argument) into one line."""
    err = check_config_overrides(argv)
    if err:
        print(err, file=sys.stderr)
        sys.exit(2)
    try:
        return flags.FLAGS(argv)
    except (flags.Error, AttributeError, KeyError, ValueError) as e:
        lines = [x.strip() for x in str(e).splitlines() if x.strip()]
        print(f"kdjax: error: bad flags: {lines[0] if lines else type(e).__name__}", file=sys.stderr)
        sys.exit(2)


def run() -> None:
    """Parses flags (one-line errors for bad config keys/arguments) and runs main."""
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
