"""Synthetic shards written by an `invert` stage (model inversion), read back as a source.

Layout (kdjax.train.invert): `<root>/shard_<k>.npz`, each holding `features/<key>` `[b, T, F]`
float32 (e.g. inverted log-mel spectrograms), `labels` `[b, C]` (the targets the inversion
used) and optional per-clip arrays (e.g. `teacher_logits`), plus `<root>/meta.json`
(`sample_rate`, `class_names`, `feature_key`). Elements carry `features/<key>` instead of
`audio`, so a student reads them as `features.<key>` exactly where it reads a front-end's
output on real data (evaluation then runs the front-end on real audio).
"""

from __future__ import annotations

import glob
import json
import os
from typing import Any

import numpy as np

from kdjax.data.audio import DatasetNotFoundError


class ArraySource:
    """A random-access source over in-memory arrays of equal length (no audio decoding).

    Args:
      arrays: `{key: [N, ...]}`; must include `labels [N, C]`.
      sample_rate, class_names, multi_label, name: as `ClipSource`.

    Raises:
      ValueError: no labels, or arrays of different lengths.
    """

    def __init__(self, arrays: dict[str, np.ndarray], *, sample_rate: int, class_names: list[str],
                 multi_label: bool = False, name: str = ""):
        if "labels" not in arrays:
            raise ValueError(f"{name}: arrays must include 'labels'")
        n = {k: len(v) for k, v in arrays.items()}
        if len(set(n.values())) != 1:
            raise ValueError(f"{name}: arrays of different lengths {n}")
        self.arrays = arrays
        self.sample_rate = int(sample_rate)
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.multi_label = multi_label
        self.name = name

    def __len__(self) -> int:
        return len(self.arrays["labels"])

    def __getitem__(self, i: int) -> dict[str, Any]:
        i = int(i)
        ex = {k: np.asarray(v[i], np.float32) for k, v in self.arrays.items()}
        ex.setdefault("label_mask", np.ones(self.num_classes, np.float32))
        ex["index"] = np.int32(i)
        return ex

    def __repr__(self) -> str:
        return f"ArraySource({self.name!r}, {len(self)} examples, keys {sorted(self.arrays)})"


def source(split: str = "all", *, root: str, max_examples: int = 0, extras: bool = True,
           check_acceptance: bool = True) -> ArraySource:
    """All shards under `root` (split is ignored: a synthetic set has one split).

    `extras=False` reads only `features/<key>` and `labels` (not the stored per-clip arrays such
    as `teacher_logits`; e.g. for in-step mixup, which cannot mix them consistently).
    `check_acceptance=False` reads a set its invert stage rejected (for reports and
    diagnostics; a training stage should not).

    Raises:
      DatasetNotFoundError: no `meta.json` or no shard under `root` (names it).
      ValueError: the invert stage's acceptance check rejected the set (or has not run) and
        its `on_reject` is "stop" (names the set and the measured accuracy).
    """
    del split
    meta_path = os.path.join(root, "meta.json")
    shards = sorted(glob.glob(os.path.join(root, "shard_*.npz")))
    if not os.path.isfile(meta_path) or not shards:
        raise DatasetNotFoundError(f"synthetic data: no meta.json/shard_*.npz under {root} (run the invert stage first)")
    with open(meta_path) as f:
        meta = json.load(f)
    acc = meta.get("acceptance") or {}  # kdjax.train.invert's acceptance check (absent: unchecked)
    if check_acceptance and acc.get("on_reject") == "stop" and acc.get("status") != "accepted":
        measured = acc.get("teacher_accuracy_on_targets")
        raise ValueError(
            f"synthetic data {root}: the set was "
            + (f"rejected by its invert stage: teacher accuracy on its targets {measured:.4f} < "
               f"accept_accuracy {acc.get('accept_accuracy')}" if acc.get("status") == "rejected"
               else "not finished by its invert stage (acceptance check pending)")
            + "; rerun the inversion (more steps) or set its on_reject='warn' to use it anyway")
    parts: dict[str, list[np.ndarray]] = {}
    for s in shards:
        with np.load(s) as z:
            for k in z.files:
                if extras or k == "labels" or k.startswith("features/"):
                    parts.setdefault(k, []).append(z[k])
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    if max_examples:
        arrays = {k: v[:max_examples] for k, v in arrays.items()}
    return ArraySource(arrays, sample_rate=meta["sample_rate"], class_names=meta["class_names"],
                       multi_label=bool(meta.get("multi_label", False)), name=f"synthetic:{root}")
