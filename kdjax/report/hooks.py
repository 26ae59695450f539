"""Recipe picture hooks: a recipe's own pictures, drawn into the report's figures folder.

`HOOKS[name](workdir, figures_dir) -> {key: png path}`; `python -m kdjax.report W --hook name`
(or `write_report(..., hook=name)`) runs one. A hook that needs what only a live workdir holds
(checkpoints, cached arrays, synthetic shards) returns {} for a results folder without them.
"""

from __future__ import annotations

from collections.abc import Callable

HOOKS: dict[str, Callable[[str, str], dict[str, str]]] = {}


def run(name: str, workdir: str, figures_dir: str) -> dict[str, str]:
    """Runs hook `name`.

    Raises:
      ValueError: an unknown hook (names the known ones).
    """
    if name not in HOOKS:
        raise ValueError(f"hook {name!r}: expected one of {sorted(HOOKS)}")
    return HOOKS[name](workdir, figures_dir)
