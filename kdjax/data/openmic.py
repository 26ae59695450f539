"""OpenMIC-2018: 20000 10 s clips, 20 instruments, partial soft labels.

Source: E. Humphrey, S. Durand, B. McFee, "OpenMIC-2018: An Open Data-set for
Multiple Instrument Recognition", ISMIR 2018; zenodo.org/record/1432913,
github.com/cosmir/openmic-2018. Layout under `<data_root>/openmic-2018/`:
  openmic-2018.npz            Y_true [N, 20] (relevance in [0, 1]), Y_mask [N, 20]
                              (bool: label observed), sample_key [N]
  (or openmic-2018-aggregated-labels.csv: sample_key, instrument, relevance, num_responses)
  class-map.json              instrument -> column index (0..19)
  partitions/split01_train.csv, split01_test.csv   one sample_key per line
  audio/{key[:3]}/{key}.ogg   44.1 kHz

Labels: relevance > 0.5 positive (1), < 0.5 negative (0), == 0.5 undecided ->
label_mask 0 (excluded from loss and metrics), unobserved -> label_mask 0.
`soft=True` keeps the relevance itself as the label probability.

Splits: train, test (official split01), validation (10 % of train chosen by
sha1 of the sample key, deterministic) and train_sub (train minus validation), all.
"""

from __future__ import annotations

import json
import os

import numpy as np

from kdjax.data._helpers import (
    dataset_dir,
    find_audio,
    read_table,
    require,
    stable_fraction,
    unknown_split,
)
from kdjax.data.audio import DatasetNotFoundError
from kdjax.data.base import ClipRecord, ClipSource

SAMPLE_RATE = 44100
SPLITS = ("train", "test", "validation", "train_sub", "all")
_HINT = ("Download openmic-2018-v1.0.0.tgz from https://zenodo.org/record/1432913 and unpack it so "
         "that <data_root>/openmic-2018/openmic-2018.npz, class-map.json, partitions/ and audio/ exist.")


def _labels(root):
    class_map = json.loads(require(root / "class-map.json", "openmic", _HINT).read_text())
    names = [n for n, _ in sorted(class_map.items(), key=lambda kv: kv[1])]
    npz = root / "openmic-2018.npz"
    if npz.is_file():
        with np.load(npz, allow_pickle=False) as z:
            for k in ("Y_true", "Y_mask", "sample_key"):
                if k not in z.files:
                    raise ValueError(f"openmic: {npz} lacks array {k!r} (has {z.files})")
            return names, [str(k) for k in z["sample_key"]], z["Y_true"].astype(np.float32), z["Y_mask"].astype(bool)
    csv = root / "openmic-2018-aggregated-labels.csv"
    if not csv.is_file():
        raise DatasetNotFoundError(f"openmic: neither {npz} nor {csv} found. {_HINT}")
    rows = read_table(csv, ("sample_key", "instrument", "relevance"), dataset="openmic")
    keys = sorted({r["sample_key"] for r in rows})
    pos = {k: i for i, k in enumerate(keys)}
    y = np.zeros((len(keys), len(names)), np.float32)
    m = np.zeros_like(y, dtype=bool)
    for r in rows:
        if r["instrument"] not in class_map:
            raise ValueError(f"openmic: {csv}: unknown instrument {r['instrument']!r}")
        i, j = pos[r["sample_key"]], class_map[r["instrument"]]
        y[i, j], m[i, j] = float(r["relevance"]), True
    return names, keys, y, m


def source(split: str, *, soft: bool = False, data_dir: str | os.PathLike | None = None,
           cache: bool = False) -> ClipSource:
    """OpenMIC-2018 clips of `split`; labels `[20]` (hard or soft) + label_mask `[20]`.

    Raises:
      DatasetNotFoundError: labels, partitions or a clip missing (names the path and the download).
      ValueError: unknown split, malformed npz/CSV.
    """
    if split not in SPLITS:
        raise unknown_split("openmic", split, SPLITS)
    root = dataset_dir(data_dir, "openmic-2018", "openmic")
    names, keys, y, m = _labels(root)

    def part(name):
        p = require(root / "partitions" / f"split01_{name}.csv", "openmic", _HINT)
        return {line.strip().split(",")[0] for line in p.read_text().splitlines() if line.strip()}

    train, test = part("train"), part("test")
    val = {k for k in train if stable_fraction("openmic:" + k) < 10.0}
    chosen = {"train": train, "test": test, "validation": val, "train_sub": train - val,
              "all": train | test}[split]
    recs = []
    for i, k in enumerate(keys):
        if k not in chosen:
            continue
        mask = m[i] & (y[i] != 0.5)
        labels = y[i] if soft else (y[i] > 0.5).astype(np.float32)
        path = find_audio(root / "audio" / k[:3], f"{k}.ogg")
        if path is None:
            raise DatasetNotFoundError(f"openmic: {root / 'audio' / k[:3] / (k + '.ogg')} not found. {_HINT}")
        recs.append(ClipRecord(str(path), np.asarray(labels, np.float32), mask.astype(np.float32),
                               meta={"sample_key": k}))
    return ClipSource(recs, sample_rate=SAMPLE_RATE, class_names=names, multi_label=True, cache=cache,
                      name=f"openmic/{split}")
