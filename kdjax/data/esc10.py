"""ESC-10: the 10-class, CC-BY subset of ESC-50 (see `kdjax.data.esc50` for splits and layout).

`get_source("esc10", split)` is `esc50.source(split, subset="esc10")`.
"""

from __future__ import annotations

import os

from kdjax.data import esc50
from kdjax.data.base import ClipSource


def source(split: str, *, data_dir: str | os.PathLike | None = None, cache: bool = False) -> ClipSource:
    """ESC-10 clips of `split` (all, foldK, test_foldK, train_foldK, validation_foldK, fit_foldK).

    Raises:
      DatasetNotFoundError: no ESC-10/ESC-50 layout under the data dir (names the path).
      ValueError: unknown split.
    """
    return esc50.source(split, subset="esc10", data_dir=data_dir, cache=cache)
