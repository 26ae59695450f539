"""Free Spoken Digit Dataset (FSDD): 3000 recordings of spoken digits, 8 kHz, 10 classes.

Upstream: github.com/Jakobovski/free-spoken-digit-dataset (CC BY-SA 4.0), the
same corpus as TFDS `spoken_digit`. 6 speakers x 10 digits x 50 takes; files
`{digit}_{speaker}_{take}.wav|flac`.

Splits (the official one: takes 0-4 are test):
  test        takes 0-4     300 clips
  train_full  takes 5-49   2700 clips  (the official train split)
  validation  takes 5-9     300 clips  (held out from train_full for model selection)
  train       takes 10-49  2400 clips
  all                      3000 clips

Files are looked up in `<data_root>/fsdd/audio/` (or `<data_root>/fsdd/recordings/`,
the upstream layout); see `kdjax.data.base.data_root`. When absent, `source`
downloads the upstream archive into `<data_root>/fsdd/`.
"""

from __future__ import annotations

import io
import os
import pathlib
import re
import shutil
import tarfile
import urllib.request

import numpy as np

from kdjax.data.audio import DatasetNotFoundError
from kdjax.data.base import ClipRecord, ClipSource, data_root, one_hot

SAMPLE_RATE = 8000
CLASS_NAMES = [str(d) for d in range(10)]
NUM_TAKES = 50
URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/v1.0.10.tar.gz"
_NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.(wav|flac)$")
SPLITS = {
    "test": range(0, 5),
    "validation": range(5, 10),
    "train": range(10, 50),
    "train_full": range(5, 50),
    "all": range(0, 50),
}


def _audio_dir(root: pathlib.Path) -> pathlib.Path | None:
    for sub in ("audio", "recordings"):
        d = root / sub
        if d.is_dir() and any(_NAME.match(f) for f in os.listdir(d)):
            return d
    return None


def download(root: pathlib.Path, url: str = URL) -> pathlib.Path:
    """Downloads the upstream FSDD archive and unpacks its WAVs into `root/audio/`.

    Raises:
      DatasetNotFoundError: the download failed; the message says where to put the files.
    """
    target = root / "audio"
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            data = resp.read()
        tmp = root / "audio.partial"
        tmp.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for m in tar.getmembers():
                name = os.path.basename(m.name)
                if m.isfile() and "/recordings/" in m.name and _NAME.match(name):
                    with tar.extractfile(m) as src, open(tmp / name, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        tmp.rename(target)  # only a complete download becomes visible
    except Exception as e:
        raise DatasetNotFoundError(
            f"FSDD not found in {root} and download from {url} failed ({type(e).__name__}: {e}); "
            f"put the recordings ({{digit}}_{{speaker}}_{{take}}.wav or .flac) in {target}/ "
            "or set KDJAX_DATA_DIR to a folder containing fsdd/audio/"
        ) from None
    return target


def find_audio_dir(data_dir: str | os.PathLike | None = None, *, allow_download: bool = True) -> pathlib.Path:
    """Returns the folder holding the FSDD clips, downloading them if allowed and needed.

    Args:
      data_dir: folder containing `fsdd/` (default: `data_root()`).
      allow_download: fetch the upstream archive when the clips are missing.

    Raises:
      DatasetNotFoundError: no clips and no download; names the expected path.
    """
    root = pathlib.Path(data_dir).expanduser() if data_dir else data_root()
    fsdd = root / "fsdd"
    d = _audio_dir(fsdd)
    if d is not None:
        return d
    if not allow_download:
        raise DatasetNotFoundError(
            f"FSDD not found: expected {{digit}}_{{speaker}}_{{take}}.wav|flac files in {fsdd / 'audio'}/"
        )
    return download(fsdd)


def records(audio_dir: pathlib.Path, split: str) -> list[ClipRecord]:
    """Parses file names into records of one split (sorted by file name, deterministic).

    Raises:
      ValueError: unknown split.
    """
    if split not in SPLITS:
        raise ValueError(f"fsdd: unknown split {split!r}, expected one of {sorted(SPLITS)}")
    takes = set(SPLITS[split])
    out = []
    for name in sorted(os.listdir(audio_dir)):
        m = _NAME.match(name)
        if not m:
            continue
        digit, speaker, take = int(m.group(1)), m.group(2), int(m.group(3))
        if take in takes:
            out.append(
                ClipRecord(
                    path=str(audio_dir / name),
                    labels=one_hot(digit, 10),
                    meta={"speaker": speaker, "take": take, "digit": digit},
                )
            )
    return out


def source(
    split: str, *, data_dir: str | os.PathLike | None = None, cache: bool = True, allow_download: bool = True
) -> ClipSource:
    """FSDD clips of `split` as a `ClipSource` (8 kHz, labels one-hot `[10]`).

    Raises:
      DatasetNotFoundError: dataset missing and not downloadable.
      ValueError: unknown split.
    """
    audio_dir = find_audio_dir(data_dir, allow_download=allow_download)
    return ClipSource(
        records(audio_dir, split),
        sample_rate=SAMPLE_RATE,
        class_names=CLASS_NAMES,
        cache=cache,
        name=f"fsdd/{split}",
    )


def class_counts(src: ClipSource) -> np.ndarray:
    """Clips per class `[10]`."""
    return np.bincount(src.label_ids(), minlength=10)
