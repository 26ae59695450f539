"""FSD50K (200 AudioSet classes, multi-label) and FSDKaggle2018 (41 classes, single-label).

Sources: E. Fonseca et al., "FSD50K: an Open Dataset of Human-Labeled Sound
Events", IEEE/ACM TASLP 2022, zenodo.org/record/4060432; E. Fonseca et al.,
"General-purpose Tagging of Freesound Audio with AudioSet Labels" (DCASE 2018
Task 2), zenodo.org/record/2552860. Both 44.1 kHz.

FSD50K layout (`<data_root>/fsd50k/`):
  FSD50K.ground_truth/dev.csv     fname, labels (comma-separated names), mids, split (train/val)
  FSD50K.ground_truth/eval.csv    fname, labels, mids
  FSD50K.ground_truth/vocabulary.csv   no header: index, label, mid
  FSD50K.dev_audio/{fname}.wav, FSD50K.eval_audio/{fname}.wav
  splits: train, validation (dev split "val"), test (eval), all; labels multi-hot `[200]`.
FSDKaggle2018 layout (`<data_root>/fsdkaggle2018/`):
  FSDKaggle2018.meta/train_post_competition.csv (or train.csv): fname, label, manually_verified
  FSDKaggle2018.meta/test_post_competition_scoring_clips.csv: fname, label, usage
  FSDKaggle2018.audio_train/, FSDKaggle2018.audio_test/
  splits: train, test, all; labels one-hot `[41]` (sorted names);
  `verified_only=True` keeps manually verified train clips.
"""

from __future__ import annotations

import csv
import os

from kdjax.data._helpers import dataset_dir, multi_hot, read_table, require, unknown_split
from kdjax.data.base import ClipRecord, ClipSource

SAMPLE_RATE = 44100
_HINT50 = ("Download FSD50K from https://zenodo.org/record/4060432 (FSD50K.ground_truth.zip, "
           "FSD50K.dev_audio.zip, FSD50K.eval_audio.zip) and unpack into <data_root>/fsd50k/.")
_HINT18 = ("Download FSDKaggle2018 from https://zenodo.org/record/2552860 (FSDKaggle2018.meta.zip, "
           "FSDKaggle2018.audio_train.zip, FSDKaggle2018.audio_test.zip) and unpack into <data_root>/fsdkaggle2018/.")


def _fsd50k(split, data_dir, cache):
    splits = ("train", "validation", "test", "all")
    if split not in splits:
        raise unknown_split("fsd50k", split, splits)
    root = dataset_dir(data_dir, "fsd50k", "FSD50K")
    gt = root / "FSD50K.ground_truth"
    vocab_path = require(gt / "vocabulary.csv", "fsd50k", _HINT50)
    with open(vocab_path, newline="", encoding="utf-8") as f:
        vocab = [row for row in csv.reader(f) if row]
    try:
        vocab = sorted((int(r[0]), r[1]) for r in vocab)
    except (ValueError, IndexError):
        raise ValueError(f"fsd50k: {vocab_path}: expected rows 'index,label,mid'") from None
    names = [n for _, n in vocab]
    index = {n: i for i, n in enumerate(names)}
    rows = []
    if split in ("train", "validation", "all"):
        dev = read_table(gt / "dev.csv", ("fname", "labels", "split"), dataset="fsd50k", hint=_HINT50)
        want = {"train": {"train"}, "validation": {"val"}, "all": {"train", "val"}}[split]
        rows += [(r, root / "FSD50K.dev_audio") for r in dev if r["split"] in want]
    if split in ("test", "all"):
        ev = read_table(gt / "eval.csv", ("fname", "labels"), dataset="fsd50k", hint=_HINT50)
        rows += [(r, root / "FSD50K.eval_audio") for r in ev]
    recs = []
    for r, adir in rows:
        labs = [x for x in r["labels"].split(",") if x]
        bad = [x for x in labs if x not in index]
        if bad or not labs:
            raise ValueError(f"fsd50k: clip {r['fname']}: labels {bad or labs!r} not in vocabulary.csv")
        path = require(adir / f"{r['fname']}.wav", "fsd50k", _HINT50)
        recs.append(ClipRecord(str(path), multi_hot([index[x] for x in labs], len(names)),
                               meta={"fname": r["fname"]}))
    return ClipSource(recs, sample_rate=SAMPLE_RATE, class_names=names, multi_label=True, cache=cache,
                      name=f"fsd50k/{split}")


def _fsdkaggle2018(split, data_dir, cache, verified_only):
    splits = ("train", "test", "all")
    if split not in splits:
        raise unknown_split("fsdkaggle2018", split, splits)
    root = dataset_dir(data_dir, "fsdkaggle2018", "FSDKaggle2018")
    meta = root / "FSDKaggle2018.meta"
    train_csv = meta / "train_post_competition.csv"
    if not train_csv.is_file():
        train_csv = meta / "train.csv"
    train = read_table(train_csv, ("fname", "label"), dataset="fsdkaggle2018", hint=_HINT18)
    test = read_table(meta / "test_post_competition_scoring_clips.csv", ("fname", "label"),
                      dataset="fsdkaggle2018", hint=_HINT18)
    names = sorted({r["label"] for r in train})
    rows = []
    if split in ("train", "all"):
        rows += [(r, root / "FSDKaggle2018.audio_train") for r in train
                 if not verified_only or r.get("manually_verified", "1") == "1"]
    if split in ("test", "all"):
        rows += [(r, root / "FSDKaggle2018.audio_test") for r in test]
    recs = []
    for r, adir in rows:
        if r["label"] not in names:
            raise ValueError(f"fsdkaggle2018: clip {r['fname']}: label {r['label']!r} not among the train labels")
        path = require(adir / r["fname"], "fsdkaggle2018", _HINT18)
        recs.append(ClipRecord(str(path), multi_hot([names.index(r["label"])], len(names)),
                               meta={"fname": r["fname"], "manually_verified": r.get("manually_verified", "")}))
    return ClipSource(recs, sample_rate=SAMPLE_RATE, class_names=names, cache=cache,
                      name=f"fsdkaggle2018/{split}")


def source(split: str, *, corpus: str = "fsd50k", verified_only: bool = False,
           data_dir: str | os.PathLike | None = None, cache: bool = False) -> ClipSource:
    """FSD50K (`corpus="fsd50k"`) or FSDKaggle2018 (`corpus="fsdkaggle2018"`) clips of `split`.

    Raises:
      DatasetNotFoundError: metadata or a clip missing (names the path and the download).
      ValueError: unknown corpus/split, malformed metadata, labels outside the vocabulary.
    """
    if corpus == "fsd50k":
        return _fsd50k(split, data_dir, cache)
    if corpus == "fsdkaggle2018":
        return _fsdkaggle2018(split, data_dir, cache, verified_only)
    raise ValueError(f"fsd50k: corpus={corpus!r}, expected 'fsd50k' or 'fsdkaggle2018'")
