"""ESC-50 and its CC-BY subset ESC-10: 5-second environmental sound clips, 5 official folds.

Source: K. J. Piczak, "ESC: Dataset for Environmental Sound Classification",
ACM MM 2015; github.com/karolpiczak/ESC-50 (metadata `meta/esc50.csv`:
filename, fold, target, category, esc10, src_file, take). 2000 clips, 50
classes x 40, 44.1 kHz upstream; ESC-10 = 400 clips, 10 classes x 40.

Layouts read (under `data_dir`, default `kdjax.data.base.data_root()`):
  esc10/esc10.csv + esc10/audio/     the ESC-10 rows of esc50.csv (UTF-8 with BOM);
                                     the `filename` column names `.wav`, files may be
                                     `.flac` with the same stem (both are found)
  esc50/meta/esc50.csv + esc50/audio/  the upstream repository (also `ESC-50-master/`);
                                     `subset="esc10"` keeps rows with esc10 == True
The sample rate is the files' native one (read from the first file's header:
16 kHz for the shared ESC-10 copy, 44.1 kHz upstream).

Labels: ESC-50 keeps `target` (0..49). ESC-10 remaps its targets
(0, 1, 10, 11, 12, 20, 21, 38, 40, 41) in ascending order to 0..9; class names
come from `category`.

Splits (protocol: 5-fold cross-validation, report the mean test accuracy):
  all                 every clip
  foldK / test_foldK  official fold K (K = 1..5)
  train_foldK         the other 4 folds (train set of the K-th cross-validation run)
  validation_foldK    fold (K mod 5) + 1, the next fold, held out for model selection
  fit_foldK           train_foldK without validation_foldK (3 folds)
Use fit_foldK/validation_foldK to choose hyperparameters or epochs, then
report a model trained on train_foldK (or on fit_foldK) on test_foldK.
"""

from __future__ import annotations

import os
import pathlib

from kdjax.data._helpers import dataset_dir, find_audio, native_rate, read_table, unknown_split
from kdjax.data.audio import DatasetNotFoundError
from kdjax.data.base import ClipRecord, ClipSource, one_hot

ESC10_TARGETS = (0, 1, 10, 11, 12, 20, 21, 38, 40, 41)
NUM_FOLDS = 5
UPSTREAM_RATE = 44100
_COLUMNS = ("filename", "fold", "target", "category")
_HINT = (
    "Download ESC-50 from https://github.com/karolpiczak/ESC-50 (archive master.zip) and "
    "unpack it so that <data_root>/esc50/meta/esc50.csv and <data_root>/esc50/audio/*.wav exist "
    "(for ESC-10 alone: <data_root>/esc10/esc10.csv + <data_root>/esc10/audio/)."
)


def split_folds(split: str) -> tuple[int, ...]:
    """Folds (1..5) a split name covers; raises ValueError for an unknown split name."""
    valid = ["all"] + [
        f"{p}fold{k}" for p in ("", "test_", "train_", "validation_", "fit_") for k in range(1, 6)
    ]
    if split == "all":
        return tuple(range(1, NUM_FOLDS + 1))
    for prefix in ("test_", "train_", "validation_", "fit_", ""):
        if split.startswith(prefix + "fold"):
            try:
                k = int(split[len(prefix) + 4 :])
            except ValueError:
                break
            if not 1 <= k <= NUM_FOLDS:
                break
            val = k % NUM_FOLDS + 1
            if prefix in ("", "test_"):
                return (k,)
            if prefix == "validation_":
                return (val,)
            others = tuple(f for f in range(1, NUM_FOLDS + 1) if f != k)
            return others if prefix == "train_" else tuple(f for f in others if f != val)
    raise unknown_split("esc50", split, valid)


def _locate(data_dir, subset: str) -> tuple[pathlib.Path, pathlib.Path, bool]:
    """(csv path, audio folder, csv holds only ESC-10 rows)."""
    if subset == "esc10":
        d = dataset_dir(data_dir, "esc10")
        if (d / "esc10.csv").is_file():
            return d / "esc10.csv", d / "audio", True
    d = dataset_dir(data_dir, "esc50", "ESC-50-master", "ESC-50")
    if (d / "meta" / "esc50.csv").is_file():
        return d / "meta" / "esc50.csv", d / "audio", False
    if data_dir is not None and (pathlib.Path(data_dir) / "meta" / "esc50.csv").is_file():
        d = pathlib.Path(data_dir)
        return d / "meta" / "esc50.csv", d / "audio", False
    where = (
        f"{dataset_dir(data_dir, 'esc10') / 'esc10.csv'} or " if subset == "esc10" else ""
    ) + str(d / "meta" / "esc50.csv")
    raise DatasetNotFoundError(f"{subset}: metadata not found ({where}). {_HINT}")


def records(data_dir: str | os.PathLike | None, split: str, *, subset: str = "esc50") -> list[ClipRecord]:
    """Parses the metadata into records of `split` (sorted by file name).

    Returns records with one-hot labels `[50]` (esc50) or `[10]` (esc10) and
    meta {fold, target (ESC-50 id), category, src_file, take}.

    Raises:
      DatasetNotFoundError: metadata missing, or a listed clip missing in audio/.
      ValueError: unknown split/subset, malformed CSV (missing column, bad fold/target).
    """
    if subset not in ("esc50", "esc10"):
        raise ValueError(f"esc50: subset={subset!r}, expected 'esc50' or 'esc10'")
    folds = set(split_folds(split))
    csv_path, audio_dir, only_esc10 = _locate(data_dir, subset)
    rows = read_table(csv_path, _COLUMNS, dataset=subset, hint=_HINT)
    if subset == "esc10" and not only_esc10:
        if "esc10" not in rows[0]:
            raise ValueError(f"esc10: {csv_path} lacks the 'esc10' column needed to select ESC-10")
        rows = [r for r in rows if r["esc10"].lower() in ("true", "1")]
    targets = ESC10_TARGETS if subset == "esc10" else tuple(range(50))
    remap = {t: i for i, t in enumerate(targets)}
    out = []
    for r in sorted(rows, key=lambda r: r["filename"]):
        try:
            fold, target = int(r["fold"]), int(r["target"])
        except ValueError:
            raise ValueError(
                f"{subset}: {csv_path}: row {r['filename']!r} has fold={r['fold']!r} "
                f"target={r['target']!r}, expected integers"
            ) from None
        if target not in remap or not 1 <= fold <= NUM_FOLDS:
            raise ValueError(
                f"{subset}: {csv_path}: row {r['filename']!r} has target {target} / fold {fold}, "
                f"expected a target in {targets} and a fold in 1..5"
            )
        if fold not in folds:
            continue
        path = find_audio(audio_dir, r["filename"])
        if path is None:
            raise DatasetNotFoundError(
                f"{subset}: clip {audio_dir / r['filename']} (or the same stem as .flac) not found. {_HINT}"
            )
        out.append(
            ClipRecord(
                path=str(path),
                labels=one_hot(remap[target], len(targets)),
                meta={
                    "fold": fold,
                    "target": target,
                    "category": r["category"],
                    "src_file": r.get("src_file", ""),
                    "take": r.get("take", ""),
                },
            )
        )
    return out


def class_names(data_dir: str | os.PathLike | None = None, *, subset: str = "esc50") -> list[str]:
    """`[C]` category names in label order (from the metadata's `category` column)."""
    recs = records(data_dir, "all", subset=subset)
    names: dict[int, str] = {}
    for r in recs:
        names[int(r.labels.argmax())] = r.meta["category"]
    c = len(ESC10_TARGETS) if subset == "esc10" else 50
    return [names.get(i, f"class_{i}") for i in range(c)]


def source(
    split: str,
    *,
    subset: str = "esc50",
    data_dir: str | os.PathLike | None = None,
    cache: bool = False,
) -> ClipSource:
    """ESC-50 (`subset="esc50"`, 50 classes) or ESC-10 (`subset="esc10"`, 10 classes) clips.

    Args:
      split: see the module docstring (all, foldK, test_foldK, train_foldK,
        validation_foldK, fit_foldK).
      subset: "esc50" or "esc10".
      data_dir: folder holding `esc10/` or `esc50/` (default data_root()).
      cache: keep decoded clips in memory (ESC-10 at 16 kHz: ~130 MB).

    Returns:
      ClipSource of 5 s clips at the files' native rate (Hz); labels one-hot `[C]`.

    Raises:
      DatasetNotFoundError: metadata/audio missing (message says what to download, where).
      ValueError: unknown split/subset or malformed metadata.
    """
    allrecs = records(data_dir, "all", subset=subset)
    folds = set(split_folds(split))
    recs = [r for r in allrecs if r.meta["fold"] in folds]
    c = len(ESC10_TARGETS) if subset == "esc10" else 50
    names: dict[int, str] = {int(r.labels.argmax()): r.meta["category"] for r in allrecs}
    return ClipSource(
        recs,
        sample_rate=native_rate([r.path for r in allrecs], UPSTREAM_RATE),
        class_names=[names.get(i, f"class_{i}") for i in range(c)],
        cache=cache,
        name=f"{subset}/{split}",
    )
