"""A generic labelled-audio folder described by one CSV: path, label(s), optional fold/split.

Example CSV (`<root>/metadata.csv`):
    filename,label,fold
    clips/a.wav,dog,1
Multi-label: `labels` column "dog;rain" with `label_sep=";"`.

Splits: "all"; with `split_column`: each distinct value of that column (e.g.
train/validation/test); with `fold_column`: "foldK"/"test_foldK" (fold K) and
"train_foldK" (every other fold). Classes are the sorted distinct labels unless
`class_names` fixes them (then an unknown label is an error).

Source: this project's convention (no upstream dataset); mirrors how ESC-50 and
UrbanSound8K publish metadata.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence

from kdjax.data._helpers import find_audio, multi_hot, native_rate, read_table, unknown_split
from kdjax.data.audio import DatasetNotFoundError
from kdjax.data.base import ClipRecord, ClipSource


def source(
    split: str,
    *,
    root: str | os.PathLike,
    csv: str = "metadata.csv",
    path_column: str = "filename",
    label_column: str = "label",
    label_sep: str | None = None,
    fold_column: str | None = None,
    split_column: str | None = None,
    class_names: Sequence[str] | None = None,
    sample_rate: int | None = None,
    delimiter: str = ",",
    cache: bool = False,
    data_dir: str | os.PathLike | None = None,
) -> ClipSource:
    """Clips listed in `<root>/<csv>` as a ClipSource.

    Args:
      split: "all", a value of `split_column`, or foldK/test_foldK/train_foldK with `fold_column`.
      root: the folder; audio paths in the CSV are relative to it.
      csv: CSV file name inside root.
      path_column: column with the audio path (a `.wav` name also finds a `.flac` of the same stem).
      label_column: column with the class name (single-label) or names (with `label_sep`).
      label_sep: separator of several labels in one cell; set -> multi-label (multi-hot `[C]`).
      fold_column / split_column: optional columns defining splits.
      class_names: fixed class order `[C]`; default sorted distinct labels (over all rows,
        so every split has the same classes).
      sample_rate: declared rate in Hz; default the first file's native rate.
      delimiter: CSV delimiter.
      cache: keep decoded clips in memory.
      data_dir: ignored (accepted for `get_source` uniformity).

    Returns:
      ClipSource; labels one-hot (single-label) or multi-hot `[C]`; meta holds the CSV row.

    Raises:
      DatasetNotFoundError: CSV or a listed audio file missing.
      ValueError: missing columns, unknown split, label not in class_names, empty label.
    """
    root = pathlib.Path(root)
    cols = [path_column, label_column] + [c for c in (fold_column, split_column) if c]
    rows = read_table(root / csv, cols, dataset="folder", delimiter=delimiter,
                      hint=f"expected a CSV with columns {cols} in {root}")

    def labels_of(row):
        cell = row[label_column]
        names = [x.strip() for x in cell.split(label_sep)] if label_sep else [cell]
        names = [n for n in names if n]
        if not names:
            raise ValueError(f"folder: {root / csv}: row {row[path_column]!r} has an empty label")
        return names

    names = list(class_names) if class_names is not None else sorted({n for r in rows for n in labels_of(r)})
    index = {n: i for i, n in enumerate(names)}

    if split == "all":
        keep = rows
    elif split_column and split in {r[split_column] for r in rows}:
        keep = [r for r in rows if r[split_column] == split]
    elif fold_column and "fold" in split:
        folds = sorted({r[fold_column] for r in rows})
        prefix, _, k = split.rpartition("fold")
        if k not in folds or prefix not in ("", "test_", "train_"):
            raise unknown_split("folder", split, [f"{p}fold{f}" for p in ("", "test_", "train_") for f in folds])
        keep = [r for r in rows if (r[fold_column] == k) != (prefix == "train_")]
    else:
        valid = ["all"] + (sorted({r[split_column] for r in rows}) if split_column else [])
        raise unknown_split("folder", split, valid)

    recs = []
    for r in keep:
        path = find_audio(root, r[path_column])
        if path is None:
            raise DatasetNotFoundError(f"folder: {root / r[path_column]} listed in {root / csv} not found")
        ids = []
        for n in labels_of(r):
            if n not in index:
                raise ValueError(f"folder: {root / csv}: label {n!r} not in class_names {names}")
            ids.append(index[n])
        recs.append(ClipRecord(path=str(path), labels=multi_hot(ids, len(names)), meta=dict(r)))
    if not recs:
        raise DatasetNotFoundError(f"folder: split {split!r} of {root / csv} is empty")
    return ClipSource(
        recs,
        sample_rate=sample_rate or native_rate([x.path for x in recs], 16000),
        class_names=names,
        multi_label=label_sep is not None,
        cache=cache,
        name=f"folder:{root.name}/{split}",
    )
