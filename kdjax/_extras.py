"""The one-line error of a kdjax package whose optional dependencies (a pip "extra") are missing.

`pip install kdjax` (the core install: jax and numpy) is enough for `kdjax.losses`,
`kdjax.frontends` and `kdjax.augment`. The training stack (Flax models, grain/TFDS data, the train
loop, the `python -m kdjax.main` entry point) is the `train` extra: `pip install 'kdjax[train]'`.
Each package that needs it calls `require` first, so importing it without the extra fails at
once with one line naming the command, not with a traceback into flax or grain (or, for lazily
imported pieces such as tqdm and tensorboardX, minutes into a run).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

# What the guards check: the `train` extra's modules (setup.cfg), by import name.
TRAIN: tuple[str, ...] = (
    "flax",
    "optax",
    "orbax.checkpoint",
    "ml_collections",
    "absl",
    "grain",
    "soundfile",
    "tqdm",
    "tensorboardX",
)


def installed(module: str) -> bool:
    """Whether `module` (a dotted import name) can be imported, without importing it.

    Parent packages of a dotted name are imported (`importlib.util.find_spec`'s rule).
    """
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package of a dotted name is missing
        return False


def missing_message(package: str, missing: Sequence[str], extra: str = "train") -> str:
    """The one-line message: `<package> needs <modules> (not installed): pip install 'kdjax[<extra>]'`."""
    return f"{package} needs {', '.join(missing)} (not installed): pip install 'kdjax[{extra}]'"


def require(package: str, modules: Sequence[str] = TRAIN, extra: str = "train") -> None:
    """Raises a one-line `ModuleNotFoundError` when any of `modules` is not installed.

    Args:
      package: the importing kdjax package, named in the message (e.g. "kdjax.train").
      modules: import names it needs (default: the whole `train` extra).
      extra: the setup.cfg extra that installs them.

    Raises:
      ModuleNotFoundError: `missing_message(package, missing, extra)`; `name` is the first
        missing module.
    """
    missing = [m for m in modules if not installed(m)]
    if missing:
        raise ModuleNotFoundError(missing_message(package, missing, extra), name=missing[0])
