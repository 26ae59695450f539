"""Small shared pieces of the dataset modules: locating a dataset folder, reading its
official CSV with clear errors, matching audio files whose extension changed
(upstream `.wav` re-encoded to `.flac`), and native sample rates.
"""

from __future__ import annotations

import csv
import os
import pathlib
from collections.abc import Iterable, Sequence

import numpy as np

from kdjax.data.audio import DatasetNotFoundError, audio_info
from kdjax.data.base import data_root

AUDIO_EXTS = (".wav", ".flac", ".ogg", ".mp3")


def dataset_dir(data_dir: str | os.PathLike | None, *names: str) -> pathlib.Path:
    """`<data_dir or data_root()>/<name>` for the first of `names` that exists (else the first).

    `data_dir` may also point at the dataset folder itself (it then contains the
    expected files); callers check that with `require`.
    """
    root = pathlib.Path(data_dir).expanduser() if data_dir else data_root()
    for n in names:
        if (root / n).is_dir():
            return root / n
    return root / names[0]


def require(path: pathlib.Path, dataset: str, hint: str) -> pathlib.Path:
    """Returns `path` if it exists, else raises a one-line DatasetNotFoundError.

    Args:
      path: the file or folder the dataset layout needs.
      dataset: dataset name for the message.
      hint: what to download and where to put it.

    Raises:
      DatasetNotFoundError: `path` is missing.
    """
    if not path.exists():
        raise DatasetNotFoundError(f"{dataset}: {path} not found. {hint}")
    return path


def read_table(
    path: pathlib.Path,
    columns: Sequence[str],
    *,
    dataset: str,
    delimiter: str = ",",
    hint: str = "",
    what: str = "the official file",
) -> list[dict[str, str]]:
    """Reads a metadata CSV/TSV (UTF-8, an optional BOM is dropped) into row dicts.

    Args:
      path: the table.
      columns: columns that must be present.
      dataset: dataset name for messages.
      delimiter: "," or "\\t".
      hint: download hint used when the file is missing.
      what: how the missing-column error names the file: "the official file" for a
        corpus's published metadata; e.g. "the CSV <path>" for a user's own table.

    Raises:
      DatasetNotFoundError: file missing.
      ValueError: empty file, or a required column missing (names file and columns).
    """
    require(path, dataset, hint)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        if reader.fieldnames is None:
            raise ValueError(f"{dataset}: {path} is empty; expected a header with {list(columns)}")
        fields = [c.strip() for c in reader.fieldnames]
        missing = [c for c in columns if c not in fields]
        if missing:
            raise ValueError(
                f"{dataset}: {path} lacks column(s) {missing}; found {fields} "
                f"(expected {what} with columns {list(columns)})"
            )
        rows = []
        for row in reader:
            rows.append({(k or "").strip(): (v or "").strip() for k, v in row.items()})
    return rows


def audio_index(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    """Maps file stem -> path for every audio file under `folder` (recursive)."""
    out: dict[str, pathlib.Path] = {}
    for dirpath, _, files in os.walk(folder):
        for f in files:
            stem, ext = os.path.splitext(f)
            if ext.lower() in AUDIO_EXTS:
                out.setdefault(stem, pathlib.Path(dirpath) / f)
    return out


def find_audio(folder: pathlib.Path, name: str) -> pathlib.Path | None:
    """`folder/name` if it exists, else the same stem with another audio extension."""
    p = folder / name
    if p.is_file():
        return p
    stem = p.with_suffix("")
    for ext in AUDIO_EXTS:
        q = stem.with_suffix(ext)
        if q.is_file():
            return q
    # names like "x.wav.flac" (an extension appended on re-encoding)
    for ext in AUDIO_EXTS:
        q = folder / (name + ext)
        if q.is_file():
            return q
    return None


def native_rate(paths: Iterable[str | os.PathLike], default: int) -> int:
    """Sample rate (Hz) of the first existing file in `paths`, else `default` (header only)."""
    for p in paths:
        if os.path.isfile(p):
            return audio_info(p)[0]
        break
    return default


def multi_hot(ids: Iterable[int], num_classes: int) -> np.ndarray:
    """Class ids -> float32 multi-hot `[num_classes]`; ValueError when an id is out of range."""
    v = np.zeros(num_classes, np.float32)
    for i in ids:
        if not 0 <= int(i) < num_classes:
            raise ValueError(f"label {i} out of range [0, {num_classes})")
        v[int(i)] = 1.0
    return v


def unknown_split(dataset: str, split: str, valid: Iterable[str]) -> ValueError:
    """The ValueError for an unknown split name, listing the valid ones."""
    return ValueError(f"{dataset}: unknown split {split!r}, expected one of {sorted(valid)}")


def stable_fraction(key: str) -> float:
    """Deterministic number in [0, 100) from a string: sha1 -> percentage, the
    `which_set` hashing of the Speech Commands README/`input_data.py`."""
    import hashlib

    max_per_class = 2**27 - 1
    h = int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16)
    return (h % (max_per_class + 1)) * (100.0 / max_per_class)


class SegmentSource:
    """Mixin for ClipSource subclasses whose records may name a segment of a longer file.

    A record with `meta["start"]`/`meta["stop"]` (samples) decodes only that
    segment (e.g. 1 s "silence" cuts of Speech Commands' background-noise files).
    """

    def load(self, i: int) -> np.ndarray:  # type: ignore[override]
        import soundfile as sf

        from kdjax.data.audio import AudioError, load_audio

        r = self.records[i]
        if "start" not in r.meta:
            return load_audio(r.path, expected_sr=self.sample_rate)
        try:
            wave, sr = sf.read(
                r.path, start=r.meta["start"], stop=r.meta["stop"], dtype="float32", always_2d=True
            )
        except Exception as e:
            raise AudioError(f"{r.path}: cannot decode audio ({type(e).__name__}: {e})") from None
        if sr != self.sample_rate:
            raise AudioError(f"{r.path}: sample rate is {sr} Hz, expected {self.sample_rate} Hz")
        return wave.mean(axis=1)
