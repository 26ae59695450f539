"""Speech Commands v0.02 (Warden 2018): 1 s keyword clips at 16 kHz, the 12-class task.

Source: P. Warden, "Speech Commands: A Dataset for Limited-Vocabulary Speech
Recognition", arXiv:1804.03209; CC BY 4.0; upstream README and TensorFlow's
`speech_commands/input_data.py` (`which_set`).

Classes (12): yes no up down left right on off stop go `_unknown_` `_silence_`.

Layouts read (under `data_dir`, default `data_root()`):
  speech_commands_v2_test/audio/{label}/{speaker}_nohash_{n}.wav|flac
      the official test set only (4890 clips; label folders are the 12 classes;
      `_unknown_` files are named `{word}_{speaker}_nohash_{n}...`, `_silence_`
      files are numbered 1 s background-noise cuts). Splits are derived:
      train/validation/test by `which_set` hashing (sha1 -> percentage;
      validation < 10 <= test < 20 <= train) of `SALT + speaker id`, so no
      speaker is in two splits. The salt is needed: this set was itself built
      with the unsalted `which_set`, so every one of its speakers hashes to
      "testing" (all 4525 speech clips here). `_silence_` clips are hashed by
      file name (each noise cut is in one split only).
  speech_commands_v2/{word}/{speaker}_nohash_{n}.wav + validation_list.txt,
  testing_list.txt, _background_noise_/*.wav
      the full upstream archive: the official lists define validation/test, the
      rest is train; the 25 non-keyword words map to `_unknown_` (all kept; weight
      or subsample them in the pipeline); `_silence_` = 1 s cuts of the
      background-noise files, the first 80 % of each file for train, the next
      10 % validation, the last 10 % test (disjoint noise).

Splits: train, validation, test, all.
"""

from __future__ import annotations

import os
import pathlib
import re

from kdjax.data._helpers import SegmentSource, dataset_dir, stable_fraction, unknown_split
from kdjax.data.audio import DatasetNotFoundError, audio_info
from kdjax.data.base import ClipRecord, ClipSource, one_hot

SAMPLE_RATE = 16000
KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
CLASS_NAMES = [*KEYWORDS, "_unknown_", "_silence_"]
SPLITS = ("train", "validation", "test", "all")
VALIDATION_PERCENT = 10.0
TESTING_PERCENT = 10.0
SALT = "kdjax-resplit:"
_FILE = re.compile(r"^(?:(?P<word>[a-z]+)_)?(?P<speaker>[0-9a-f]{8})_nohash_(?P<n>\d+)(?:\.wav)?\.(?:wav|flac)$")
_HINT = (
    "Download http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz and unpack it into "
    "<data_root>/speech_commands_v2/ (word folders + validation_list.txt, testing_list.txt), or the "
    "test set speech_commands_test_set_v0.02.tar.gz into <data_root>/speech_commands_v2_test/audio/."
)


def which_set(key: str, validation_percentage: float = VALIDATION_PERCENT, testing_percentage: float = TESTING_PERCENT) -> str:
    """Upstream `which_set`: "validation", "test" or "train" from the sha1 of `key`
    (the speaker id: the file name up to `_nohash_`)."""
    p = stable_fraction(key)
    if p < validation_percentage:
        return "validation"
    if p < validation_percentage + testing_percentage:
        return "test"
    return "train"


def _label_id(name: str) -> int:
    return CLASS_NAMES.index(name) if name in CLASS_NAMES else CLASS_NAMES.index("_unknown_")


def _test_layout_records(audio_dir: pathlib.Path) -> list[tuple[str, ClipRecord]]:
    out = []
    for label in sorted(os.listdir(audio_dir)):
        d = audio_dir / label
        if not d.is_dir():
            continue
        if label not in CLASS_NAMES:
            raise ValueError(f"speech_commands: unexpected folder {d}; expected one of {CLASS_NAMES}")
        for f in sorted(os.listdir(d)):
            if not f.endswith((".wav", ".flac")):
                continue
            if label == "_silence_":
                speaker, word = "", "_silence_"
                split = which_set(f"{SALT}_silence_/{f.split('.')[0]}")
            else:
                m = _FILE.match(f)
                if not m:
                    raise ValueError(f"speech_commands: {d / f}: expected {{speaker}}_nohash_{{n}}.wav|flac")
                speaker = m["speaker"]
                word = m["word"] or label
                split = which_set(SALT + speaker)
            out.append((split, ClipRecord(
                path=str(d / f), labels=one_hot(CLASS_NAMES.index(label), 12),
                meta={"speaker": speaker, "word": word, "split": split},
            )))
    return out


def _full_layout_records(root: pathlib.Path) -> list[tuple[str, ClipRecord]]:
    def read_list(name):
        p = root / name
        return set(p.read_text().split()) if p.is_file() else None

    val, test = read_list("validation_list.txt"), read_list("testing_list.txt")
    out = []
    for word in sorted(os.listdir(root)):
        d = root / word
        if not d.is_dir() or word.startswith("_"):
            continue
        for f in sorted(os.listdir(d)):
            m = _FILE.match(f)
            if not m:
                continue
            rel = f"{word}/{f}"
            if val is not None and test is not None:
                split = "validation" if rel in val else "test" if rel in test else "train"
            else:
                split = which_set(m["speaker"])
            out.append((split, ClipRecord(
                path=str(d / f), labels=one_hot(_label_id(word), 12),
                meta={"speaker": m["speaker"], "word": word, "split": split},
            )))
    noise_dir = root / "_background_noise_"
    if noise_dir.is_dir():
        for f in sorted(os.listdir(noise_dir)):
            if not f.endswith((".wav", ".flac")):
                continue
            sr, frames = audio_info(noise_dir / f)
            n = frames // sr  # whole seconds
            bounds = {"train": (0, int(n * 0.8)), "validation": (int(n * 0.8), int(n * 0.9)), "test": (int(n * 0.9), n)}
            for split, (a, b) in bounds.items():
                for k in range(a, b):
                    out.append((split, ClipRecord(
                        path=str(noise_dir / f), labels=one_hot(11, 12),
                        meta={"speaker": "", "word": "_silence_", "split": split, "start": k * sr, "stop": (k + 1) * sr},
                    )))
    return out


def find_layout(data_dir: str | os.PathLike | None = None) -> tuple[str, pathlib.Path]:
    """("full", root) or ("test_only", audio dir); raises DatasetNotFoundError naming both paths."""
    full = dataset_dir(data_dir, "speech_commands_v2", "speech_commands_v0.02")
    if full.is_dir() and any((full / k).is_dir() for k in KEYWORDS):
        return "full", full
    test = dataset_dir(data_dir, "speech_commands_v2_test") / "audio"
    if test.is_dir():
        return "test_only", test
    raise DatasetNotFoundError(f"speech_commands: neither {full}/ nor {test}/ found. {_HINT}")


class SpeechCommandsSource(SegmentSource, ClipSource):
    """ClipSource that also decodes 1 s segments of background-noise files (full layout)."""


def records(split: str, data_dir: str | os.PathLike | None = None) -> list[ClipRecord]:
    """Records of `split` (sorted by path); meta {speaker, word, split}.

    Raises:
      ValueError: unknown split or unexpected file/folder names.
      DatasetNotFoundError: dataset missing.
    """
    if split not in SPLITS:
        raise unknown_split("speech_commands", split, SPLITS)
    layout, path = find_layout(data_dir)
    pairs = _test_layout_records(path) if layout == "test_only" else _full_layout_records(path)
    return [r for s, r in pairs if split == "all" or s == split]


def source(split: str, *, data_dir: str | os.PathLike | None = None, cache: bool = False) -> ClipSource:
    """Speech Commands v2, 12 classes, 16 kHz 1 s clips; labels one-hot `[12]`.

    Args:
      split: train, validation, test or all (see module docstring).
      data_dir: folder holding `speech_commands_v2/` or `speech_commands_v2_test/`.
      cache: keep decoded clips in memory (~32 KB per clip).

    Raises:
      DatasetNotFoundError: dataset missing (message says what to download, where).
      ValueError: unknown split.
    """
    return SpeechCommandsSource(
        records(split, data_dir), sample_rate=SAMPLE_RATE, class_names=CLASS_NAMES,
        cache=cache, name=f"speech_commands/{split}",
    )
