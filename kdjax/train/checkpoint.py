"""orbax checkpoints: train state + best-so-far models + JSON metadata (data-iterator state).

Layout: `<workdir>/ckpt/<step>/{state,best,meta}`. `best` holds, per trainable
model, the params/batch_stats with the best validation metric so far, so a
resumed run selects the same model as an uninterrupted one. Saves are
collective (every process calls them) and only complete steps are visible:
a run killed mid-save resumes from the previous step.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


def _HANDLERS() -> dict[str, Any]:
    """One handler per saved item, so metadata and partial restores need no guessing."""
    return {
        "state": ocp.StandardCheckpointHandler(),
        "best": ocp.StandardCheckpointHandler(),
        "meta": ocp.JsonCheckpointHandler(),
    }


class Checkpointer:
    """Thin wrapper over `ocp.CheckpointManager` with the three items kdjax saves.

    Args:
      directory: checkpoint folder (created).
      max_to_keep: latest steps kept on disk.
    """

    def __init__(self, directory: str | os.PathLike, *, max_to_keep: int = 2):
        self.directory = os.path.abspath(os.fspath(directory))
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
            item_names=("state", "best", "meta"),
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: Any, best: Any, meta: dict[str, Any]) -> None:
        """Saves asynchronously (call `wait` before reading it or exiting)."""
        self.manager.save(
            int(step),
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                best=ocp.args.StandardSave(best),
                meta=ocp.args.JsonSave(meta),
            ),
            force=True,
        )

    def restore(self, step: int, state_target: Any, best_target: Any) -> tuple[Any, Any, dict]:
        """Restores (state, best, meta) of `step` into the targets' structure and shardings."""
        r = self.manager.restore(
            int(step),
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(state_target),
                best=ocp.args.StandardRestore(best_target),
                meta=ocp.args.JsonRestore(),
            ),
        )
        return r.state, r.best, r.meta

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()


def _restore_latest(directory: str | os.PathLike, item: str, what: str, hint: str = "") -> tuple[str, int, Any]:
    """(ckpt dir, step, host-array tree) of one saved item ("best" or "state") at the latest step.

    Restores into a NumPy target: without one, orbax rebuilds the saved shardings and refuses a
    different topology (e.g. a teacher trained by 1 process, loaded by each of 2 processes in a
    multi-process run).

    Raises:
      FileNotFoundError: no `ckpt/` folder or no finished step (`what` names the checkpoint).
    """
    directory = os.path.abspath(os.fspath(directory))
    ckpt_dir = directory if os.path.basename(directory) == "ckpt" else os.path.join(directory, "ckpt")
    if not os.path.isdir(ckpt_dir):
        raise FileNotFoundError(f"{what} not found: no {ckpt_dir}/{hint}")
    mngr = ocp.CheckpointManager(ckpt_dir, item_handlers=_HANDLERS())
    try:
        step = mngr.latest_step()
        if step is None:
            raise FileNotFoundError(f"{what} not found: {ckpt_dir}/ holds no finished step")
        md = mngr.item_metadata(step)[item]
        target = jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), md)
        r = mngr.restore(step, args=ocp.args.Composite(**{item: ocp.args.StandardRestore(target)}))
    finally:
        mngr.close()
    return ckpt_dir, step, r[item]


def load_best_variables(directory: str | os.PathLike, model_name: str) -> dict[str, Any]:
    """Loads a trained model's best variables `{"params", "batch_stats"}` from a kdjax workdir.

    Args:
      directory: the workdir of the run that trained it (holds `ckpt/`), or its `ckpt/` folder.
      model_name: the model's name in that run (`models.<name>` of its config).

    Returns:
      `{"params", "batch_stats"}` of the model's best validation step (host arrays).

    Raises:
      FileNotFoundError: no finished checkpoint there (names the path).
      KeyError: the checkpoint has no model of that name.
      ValueError: the model's best parameters were never evaluated (`best.step = -1`, the
        untrained initial parameters).
    """
    ckpt_dir, step, best = _restore_latest(directory, "best", "teacher checkpoint",
                                           " (train that stage first)")
    if model_name not in best:
        raise KeyError(f"{ckpt_dir}: no model {model_name!r} in the checkpoint; has {sorted(best)}")
    b = best[model_name]
    if int(np.asarray(b["step"])) < 0:
        # Written by a run that kept "best" at its initial value: distilling from it would
        # silently use an untrained teacher.
        raise ValueError(f"{ckpt_dir}/{step}: model {model_name!r} was never evaluated (best.step=-1): "
                         "its saved parameters are the untrained initial ones; retrain that stage")
    return {"params": b["params"], "batch_stats": b["batch_stats"]}


def load_last_variables(directory: str | os.PathLike, model_name: str) -> dict[str, Any]:
    """Loads a module's variables `{"params", "batch_stats"}` from a workdir's LATEST train state.

    Unlike `load_best_variables` (deployed models only, at their best validation step), this
    reads the train state itself, so it also finds training-only modules (`deploy=False`, e.g.
    Temporal KD's attention head) and gives every module of one step (the last saved).

    Args:
      directory: the run's workdir (holds `ckpt/`) or its `ckpt/` folder.
      model_name: a trainable module's name (`models.<name>`).

    Returns:
      `{"params", "batch_stats"}` as host arrays.

    Raises:
      FileNotFoundError: no finished checkpoint there. KeyError: no such module in the state.
    """
    ckpt_dir, step, state = _restore_latest(directory, "state", "checkpoint")
    params = state["params"]
    if model_name not in params:
        raise KeyError(f"{ckpt_dir}/{step}: no module {model_name!r} in the train state; has {sorted(params)}")
    return {"params": params[model_name], "batch_stats": state["batch_stats"].get(model_name, {})}
