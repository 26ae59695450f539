"""Per-clip arrays joined to a source by clip index (cached teacher logits, embeddings, ...).

A `cache` stage (kdjax.train.cache) stores arrays `[N, ...]` in the order of a split's source,
one file per key: `<cache workdir>/arrays/<split>/<key>.npy`. A train config joins them with

    data.join = {"embedding": "{stage:cache}/arrays/{split}/embedding.npy"}

and each batch then carries `batch.embedding` `[B, ...]`, row `i` of the file for the clip
with source index `i`. The source configuration (dataset, split, `max_examples`, clip length)
must be the cache stage's: the row count is checked against the source length.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from kdjax.data.audio import DatasetNotFoundError


def load_joined_arrays(join: Mapping[str, str], split: str, num_clips: int) -> dict[str, np.ndarray]:
    """Loads every joined array of one split.

    Args:
      join: `{key: path}`; `{split}` in a path is replaced by the split name.
      split: the split name.
      num_clips: the source's length; each array must have this many rows.

    Returns:
      `{key: array [num_clips, ...]}` (memory-mapped).

    Raises:
      DatasetNotFoundError: a file is missing (names it and the cache stage to run).
      ValueError: a key that would shadow a batch key, or a row count that differs from the
        source length (names the file and both counts).
    """
    out = {}
    for key, path in join.items():
        if key in ("audio", "labels", "label_mask", "mask", "index") or key.startswith("features/"):
            raise ValueError(f"data.join.{key}: the name is reserved for the batch's own arrays")
        p = str(path).replace("{split}", split)
        if not os.path.isfile(p):
            raise DatasetNotFoundError(f"data.join.{key}: no file {p} (run the cache stage that writes it first)")
        arr = np.load(p, mmap_mode="r")
        if arr.shape[0] != num_clips:
            raise ValueError(f"data.join.{key}: {p} has {arr.shape[0]} rows but split {split!r} has "
                             f"{num_clips} clips (cache stage and train config must use the same data)")
        out[key] = arr
    return out


class JoinedSource:
    """A source whose elements also carry `arrays[key][element["index"]]` under `key`.

    Args:
      source: a random-access source whose elements have an `index` (their position).
      arrays: `{key: [len(source), ...]}`.
    """

    def __init__(self, source, arrays: Mapping[str, np.ndarray]):
        self.source = source
        self.arrays = dict(arrays)
        for k in ("sample_rate", "num_classes", "class_names", "multi_label", "name"):
            if hasattr(source, k):
                setattr(self, k, getattr(source, k))

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> dict[str, Any]:
        ex = dict(self.source[i])
        idx = int(ex["index"])
        for k, a in self.arrays.items():
            ex[k] = np.asarray(a[idx], np.float32)
        return ex

    def __repr__(self) -> str:
        return f"JoinedSource({self.source!r}, {sorted(self.arrays)})"
