"""UrbanSound8K: 8732 urban sound excerpts (<= 4 s), 10 classes, 10 official folds.

Source: J. Salamon, C. Jacoby, J. P. Bello, "A Dataset and Taxonomy for Urban
Sound Research", ACM MM 2014; urbansounddataset.weebly.com (CC BY-NC 3.0).
Layout: `<data_root>/urbansound8k/metadata/UrbanSound8K.csv` (slice_file_name,
fsID, start, end, salience, fold, classID, class) + `audio/fold{K}/{slice_file_name}`.
Protocol: 10-fold cross-validation over the official folds (never shuffle across folds).

Splits: all, foldK / test_foldK (K = 1..10), train_foldK (the other 9 folds),
validation_foldK (fold K mod 10 + 1), fit_foldK (train_foldK minus validation_foldK).

Sample rate: the upstream files have mixed rates (mostly 44.1/48 kHz, some
8-96 kHz) and channel counts; `sample_rate` (default 44100 Hz) is the rate the
files must have, so resample the archive once to one rate (e.g. with sox or
librosa) and pass that rate; a file of another rate raises AudioError naming it.
"""

from __future__ import annotations

import os

from kdjax.data._helpers import dataset_dir, read_table, require, unknown_split
from kdjax.data.base import ClipRecord, ClipSource, one_hot

NUM_FOLDS = 10
CLASS_NAMES = ["air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling",
               "engine_idling", "gun_shot", "jackhammer", "siren", "street_music"]
_HINT = ("Download UrbanSound8K.tar.gz from https://urbansounddataset.weebly.com/urbansound8k.html "
         "and unpack it so that <data_root>/urbansound8k/metadata/UrbanSound8K.csv and "
         "<data_root>/urbansound8k/audio/fold1..fold10/ exist.")


def split_folds(split: str) -> tuple[int, ...]:
    """Folds (1..10) covered by a split name; ValueError for an unknown name."""
    all_folds = tuple(range(1, NUM_FOLDS + 1))
    if split == "all":
        return all_folds
    for prefix in ("test_", "train_", "validation_", "fit_", ""):
        if split.startswith(prefix + "fold") and split[len(prefix) + 4:].isdigit():
            k = int(split[len(prefix) + 4:])
            if 1 <= k <= NUM_FOLDS:
                val = k % NUM_FOLDS + 1
                if prefix in ("", "test_"):
                    return (k,)
                if prefix == "validation_":
                    return (val,)
                rest = tuple(f for f in all_folds if f != k)
                return rest if prefix == "train_" else tuple(f for f in rest if f != val)
    raise unknown_split("urbansound8k", split, ["all", "foldK", "test_foldK", "train_foldK",
                                                "validation_foldK", "fit_foldK (K=1..10)"])


def source(split: str, *, data_dir: str | os.PathLike | None = None, sample_rate: int = 44100,
           cache: bool = False) -> ClipSource:
    """UrbanSound8K clips of `split`; labels one-hot `[10]` (classID), meta {fold, fsID, salience}.

    Raises:
      DatasetNotFoundError: metadata or a listed clip missing (names the path and the download).
      ValueError: unknown split, missing columns, classID outside 0..9 or fold outside 1..10.
    """
    folds = set(split_folds(split))
    root = dataset_dir(data_dir, "urbansound8k", "UrbanSound8K")
    csv_path = root / "metadata" / "UrbanSound8K.csv"
    rows = read_table(csv_path, ("slice_file_name", "fold", "classID", "class"),
                      dataset="urbansound8k", hint=_HINT)
    recs = []
    for r in rows:
        fold, cid = int(r["fold"]), int(r["classID"])
        if not (1 <= fold <= NUM_FOLDS and 0 <= cid < 10):
            raise ValueError(f"urbansound8k: {csv_path}: {r['slice_file_name']}: fold={fold} classID={cid} "
                             "out of range (1..10, 0..9)")
        if fold in folds:
            path = require(root / "audio" / f"fold{fold}" / r["slice_file_name"], "urbansound8k", _HINT)
            recs.append(ClipRecord(str(path), one_hot(cid, 10), meta={
                "fold": fold, "fsID": r.get("fsID", ""), "salience": r.get("salience", ""),
                "class": r["class"]}))
    return ClipSource(recs, sample_rate=sample_rate, class_names=CLASS_NAMES, cache=cache,
                      name=f"urbansound8k/{split}")
