"""Your own labelled audio: a folder of audio files described by one CSV (path, label(s),
optional fold or split column).

Example (`<root>/metadata.csv`, audio in `<root>/audio/`, `audio_dir="audio"`):
    filename,label,set
    dog_1.wav,dog,train
    rain_7.wav,rain,test
Multi-label: a `labels` column "dog;rain" with `label_sep=";"`.

Splits (every split has the same classes: the sorted distinct labels over all rows,
unless `class_names` fixes them, then an unknown label is an error):
  all          every row.
  Without `split_column` (one list of files):
    test       `test_fraction` of the rows, stratified by label, deterministic (`seed`);
    train_full the other rows; validation and train as below.
  With `split_column`: each distinct value of that column (e.g. train, test), and
    train_full the rows whose value is "train", plus "validation" and "train" carved
    from it when the column has no "validation" (nor "val") value:
    validation `val_fraction` of train_full, stratified by label, deterministic (`seed`);
    train      train_full without validation.
  With `fold_column` (cross-validation, ESC-50's names): foldK / test_foldK (fold K),
    train_foldK (every other fold), validation_foldK (the next fold in sorted order),
    fit_foldK (train_foldK without validation_foldK); with a fold column and no split
    column, nothing is carved (only "all" and these fold splits).
So `train`/`validation`/`test` exist for a corpus with a train/test column or with no
split at all. The carving hashes each file's CSV path with `seed` and holds out, per
class (per label set when multi-label), the files with the smallest hashes: the same
files for any CSV row order, and mostly the same files when rows are added.

Source: this project's convention (no upstream dataset); mirrors how ESC-50 and
UrbanSound8K publish metadata and FSDD's train_full/validation/train split names.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
from collections.abc import Sequence

from kdjax.data._helpers import find_audio, multi_hot, read_table, unknown_split
from kdjax.data.audio import DatasetNotFoundError
from kdjax.data.base import ClipRecord, ClipSource

Row = dict[str, str]
_FOLD_PREFIXES = ("", "test_", "train_", "validation_", "fit_")


def source(
    split: str,
    *,
    root: str | os.PathLike | None = None,
    csv: str = "metadata.csv",
    audio_dir: str = "",
    sample_rate: int,
    path_column: str = "filename",
    label_column: str = "label",
    label_sep: str | None = None,
    fold_column: str | None = None,
    split_column: str | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    class_names: Sequence[str] | None = None,
    delimiter: str = ",",
    cache: bool = False,
    data_dir: str | os.PathLike | None = None,
) -> ClipSource:
    """Clips listed in `<root>/<csv>` as a ClipSource.

    Args:
      split: see the module docstring ("all", "train", "validation", "test", "train_full",
        values of `split_column`, foldK/test_foldK/train_foldK/validation_foldK/fit_foldK).
      root: the corpus folder (holds the CSV); relative paths are relative to `data_dir`
        when that is given. Default: `data_dir` itself.
      csv: CSV file name inside root (or an absolute path).
      audio_dir: folder of the audio files, relative to root ("" = root itself); the
        CSV's paths are relative to it.
      sample_rate: the rate (Hz) every file must have (required: a file with another rate
        raises `AudioError` naming that file when it is read; resample such files first).
      path_column: column with the audio path (a `.wav` name also finds a `.flac` of the same stem).
      label_column: column with the class name (single-label) or names (with `label_sep`).
      label_sep: separator of several labels in one cell; set -> multi-label (multi-hot `[C]`).
      fold_column / split_column: optional columns defining splits.
        (None and "" both mean unset for label_sep, fold_column and split_column, so a
        config's `data.kw` can hold "" and be overridden from the command line.)
      val_fraction: fraction (0..1) of train_full held out as "validation" when the CSV
        has no validation split.
      test_fraction: fraction (0..1) of all rows held out as "test" when there is no
        `split_column` (one list of files).
      seed: seed of the validation/test carving (deterministic for a given seed).
      class_names: fixed class order `[C]`; default sorted distinct labels (over all rows,
        so every split has the same classes).
      delimiter: CSV delimiter.
      cache: keep decoded clips in memory.
      data_dir: the base folder of `root` (`python -m kdjax.data.prepare --source DIR`
        passes it); with no `root`, the corpus folder itself.

    Returns:
      ClipSource at `sample_rate` Hz; labels one-hot (single-label) or multi-hot `[C]`;
      meta holds the CSV row.

    Raises:
      DatasetNotFoundError: root, CSV or a listed audio file missing (names the path).
      ValueError: no root, missing columns, unknown split (lists the valid ones), label
        not in class_names, empty label, fractions outside [0, 1).
    """
    root = _resolve_root(root, data_dir, csv)
    for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= float(frac) < 1.0:
            raise ValueError(f"folder: {name}={frac}: expected a fraction in [0, 1)")
    csv_path = root / csv
    audio_root = root / audio_dir
    cols = [path_column, label_column] + [c for c in (fold_column, split_column) if c]
    rows = read_table(
        csv_path,
        cols,
        dataset="folder",
        delimiter=delimiter,
        hint=f"expected a CSV with columns {cols} in {root}",
        what=f"the CSV {csv_path} (set path_column=/label_column= to its column names)",
    )

    def labels_of(row: Row) -> list[str]:
        cell = row[label_column]
        names = [x.strip() for x in cell.split(label_sep)] if label_sep else [cell]
        names = [n for n in names if n]
        if not names:
            raise ValueError(f"folder: {csv_path}: row {row[path_column]!r} has an empty label")
        return names

    names = (
        list(class_names)
        if class_names is not None
        else sorted({n for r in rows for n in labels_of(r)})
    )
    index = {n: i for i, n in enumerate(names)}

    def holdout(rs: list[Row], fraction: float, salt: str) -> tuple[list[Row], list[Row]]:
        return _stratified_holdout(
            rs,
            fraction,
            key=lambda r: "\0".join(sorted(labels_of(r))),
            path=lambda r: r[path_column],
            salt=f"{seed}:{salt}",
        )

    keep = _select(
        rows,
        split,
        split_column=split_column,
        fold_column=fold_column,
        holdout=holdout,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
    )

    recs = []
    for r in keep:
        path = find_audio(audio_root, r[path_column])
        if path is None:
            raise DatasetNotFoundError(
                f"folder: {audio_root / r[path_column]} listed in {csv_path} not found (the CSV's "
                f"paths are relative to root/audio_dir = {audio_root}; audio_dir={audio_dir!r})"
            )
        ids = []
        for n in labels_of(r):
            if n not in index:
                raise ValueError(f"folder: {csv_path}: label {n!r} not in class_names {names}")
            ids.append(index[n])
        recs.append(ClipRecord(path=str(path), labels=multi_hot(ids, len(names)), meta=dict(r)))
    if not recs:
        raise DatasetNotFoundError(f"folder: split {split!r} of {csv_path} is empty")
    return ClipSource(
        recs,
        sample_rate=int(sample_rate),
        class_names=names,
        multi_label=bool(label_sep),
        cache=cache,
        name=f"folder:{root.name}/{split}",
    )


def _resolve_root(root, data_dir, csv: str) -> pathlib.Path:
    """`data_dir/root`, `root` or `data_dir`; ValueError when neither, DatasetNotFoundError when absent."""
    if root is None and data_dir is None:
        raise ValueError(
            "folder: root is required: the folder holding the CSV and the audio "
            "(data.kw.root=..., or --source DIR for python -m kdjax.data.prepare)"
        )
    base = pathlib.Path(data_dir).expanduser() if data_dir is not None else pathlib.Path(".")
    path = base / pathlib.Path(root).expanduser() if root is not None else base
    if not path.is_dir():
        raise DatasetNotFoundError(f"folder: root {path} not found (the folder holding {csv})")
    return path


def default_splits(
    *,
    root: str | os.PathLike | None = None,
    csv: str = "metadata.csv",
    split_column: str | None = None,
    fold_column: str | None = None,
    delimiter: str = ",",
    data_dir: str | os.PathLike | None = None,
    **unused,
) -> list[str]:
    """The splits `python -m kdjax.data.prepare` checks by default (takes `source`'s keywords).

    With `fold_column`: fold1..foldK (every clip once); else "train", "validation",
    "test" (carved where the CSV lacks them) and any other value of `split_column`.

    Raises:
      DatasetNotFoundError, ValueError: as `source` (missing root or CSV, missing columns).
    """
    del unused
    root = _resolve_root(root, data_dir, csv)
    cols = [c for c in (split_column, fold_column) if c]
    rows = read_table(
        root / csv,
        cols,
        dataset="folder",
        delimiter=delimiter,
        hint=f"expected a CSV with columns {cols} in {root}",
        what=f"the CSV {root / csv}",
    )
    if fold_column:
        return [f"fold{k}" for k in sorted({r[fold_column] for r in rows}, key=_fold_order)]
    valid = split_names(rows, split_column=split_column, fold_column=None)
    std = [s for s in ("train", "validation", "test") if s in valid]
    extra = (
        sorted({r[split_column] for r in rows} - {"train", "validation", "val", "test"})
        if split_column
        else []
    )
    return std + extra


def split_names(
    rows: Sequence[Row], *, split_column: str | None, fold_column: str | None
) -> list[str]:
    """Every split name `source` accepts for these CSV rows (sorted); see the module docstring."""
    out = {"all"}
    if split_column:
        values = {r[split_column] for r in rows}
        out |= values
        if "train" in values:
            out |= {"train_full", "validation"}
        if "val" in values:
            out.add("validation")
    elif not fold_column:  # one list of files: everything is carved
        out |= {"train", "validation", "test", "train_full"}
    if fold_column:
        out |= {f"{p}fold{k}" for p in _FOLD_PREFIXES for k in {r[fold_column] for r in rows}}
    return sorted(out)


def _select(rows, split, *, split_column, fold_column, holdout, val_fraction, test_fraction):
    """The rows of `split` (see the module docstring); ValueError listing the valid names."""
    valid = split_names(rows, split_column=split_column, fold_column=fold_column)
    if split not in valid:
        raise unknown_split("folder", split, valid)
    if split == "all":
        return list(rows)
    if fold_column and "fold" in split:
        prefix, _, k = split.rpartition("fold")
        folds = sorted({r[fold_column] for r in rows}, key=_fold_order)
        if prefix in _FOLD_PREFIXES and k in folds:
            nxt = folds[(folds.index(k) + 1) % len(folds)]
            fold_sets = {"": {k}, "test_": {k}, "validation_": {nxt}}
            fold_sets["train_"] = set(folds) - {k}
            fold_sets["fit_"] = set(folds) - {k, nxt}
            return [r for r in rows if r[fold_column] in fold_sets[prefix]]
    if split_column:
        values = {r[split_column] for r in rows}
        if split in values and split != "train":
            return [r for r in rows if r[split_column] == split]
        if split == "validation":  # "val" in the CSV, or carved from train
            if "val" in values:
                return [r for r in rows if r[split_column] == "val"]
        full = [r for r in rows if r[split_column] == "train"]
        if values & {"validation", "val"}:
            return full  # train / train_full: the CSV's own train rows
    else:
        rest, test = holdout(list(rows), test_fraction, "test")
        if split == "test":
            return test
        full = rest
    if split == "train_full":
        return full
    train, val = holdout(full, val_fraction, "validation")
    return val if split == "validation" else train


def _fold_order(fold: str):
    return (0, int(fold), fold) if fold.isdigit() else (1, 0, fold)


def _stratified_holdout(rows, fraction, *, key, path, salt):
    """Splits rows into (kept, held out): per stratum `key(row)`, the rows with the smallest
    sha1(salt + path) hashes; `round(n * fraction)` rows in all, shared among strata by
    largest remainder (ties by stratum name), so every class is held out in proportion."""
    strata: dict[str, list[Row]] = {}
    for r in rows:
        strata.setdefault(key(r), []).append(r)
    quota = {s: len(rs) * fraction for s, rs in strata.items()}
    take = {s: int(q) for s, q in quota.items()}
    extra = round(len(rows) * fraction) - sum(take.values())
    for s in sorted(quota, key=lambda s: (-(quota[s] - take[s]), s))[: max(extra, 0)]:
        take[s] += 1
    held: set[int] = set()
    for s, rs in strata.items():
        ranked = sorted(rs, key=lambda r: hashlib.sha1(f"{salt}:{path(r)}".encode()).hexdigest())
        held |= {id(r) for r in ranked[: take[s]]}
    return [r for r in rows if id(r) not in held], [r for r in rows if id(r) in held]
