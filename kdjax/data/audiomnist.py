"""AudioMNIST: 30000 spoken digits (0-9) by 60 speakers x 50 takes, 48 kHz.

Source: S. Becker et al., "Interpreting and Explaining Deep Neural Networks for
Classification of Audio Signals", arXiv:1807.03418; github.com/soerenab/AudioMNIST
(MIT). Layout: `<data_root>/audiomnist/data/{speaker:02d}/{digit}_{speaker}_{take}.wav`
and `data/audioMNIST_meta.txt` (JSON: speaker id -> accent, age, gender, ...).

Splits (speaker-disjoint; our choice, documented because the paper's own
5-fold speaker splits live in its preprocessing script): speakers 1-48 train,
49-54 validation, 55-60 test; `all`. Labels one-hot `[10]`; meta {speaker, take, gender}.
"""

from __future__ import annotations

import json
import os
import re

from kdjax.data._helpers import dataset_dir, require, unknown_split
from kdjax.data.base import ClipRecord, ClipSource, one_hot

SAMPLE_RATE = 48000
CLASS_NAMES = [str(d) for d in range(10)]
SPLITS = {"train": range(1, 49), "validation": range(49, 55), "test": range(55, 61), "all": range(1, 61)}
_NAME = re.compile(r"^(\d)_(\d+)_(\d+)\.(wav|flac)$")
_HINT = ("Clone https://github.com/soerenab/AudioMNIST and copy its data/ folder to "
         "<data_root>/audiomnist/data/ (60 speaker folders + audioMNIST_meta.txt).")


def source(split: str, *, data_dir: str | os.PathLike | None = None, cache: bool = False) -> ClipSource:
    """AudioMNIST clips of `split` (speaker-disjoint), 48 kHz, labels one-hot `[10]`.

    Raises:
      DatasetNotFoundError: data/ or audioMNIST_meta.txt missing.
      ValueError: unknown split, malformed meta JSON, or a file whose speaker disagrees with its folder.
    """
    if split not in SPLITS:
        raise unknown_split("audiomnist", split, SPLITS)
    root = dataset_dir(data_dir, "audiomnist", "AudioMNIST")
    data = require(root / "data", "audiomnist", _HINT)
    meta_path = require(data / "audioMNIST_meta.txt", "audiomnist", _HINT)
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"audiomnist: {meta_path} is not valid JSON ({e})") from None
    speakers = set(SPLITS[split])
    recs = []
    for spk_dir in sorted(os.listdir(data)):
        if not spk_dir.isdigit() or int(spk_dir) not in speakers:
            continue
        for f in sorted(os.listdir(data / spk_dir)):
            m = _NAME.match(f)
            if not m:
                continue
            if int(m.group(2)) != int(spk_dir):
                raise ValueError(f"audiomnist: {data / spk_dir / f}: speaker {m.group(2)} in folder {spk_dir}")
            info = meta.get(spk_dir, meta.get(str(int(spk_dir)), {}))
            recs.append(ClipRecord(str(data / spk_dir / f), one_hot(int(m.group(1)), 10), meta={
                "speaker": int(spk_dir), "take": int(m.group(3)), "gender": info.get("gender", "")}))
    return ClipSource(recs, sample_rate=SAMPLE_RATE, class_names=CLASS_NAMES, cache=cache,
                      name=f"audiomnist/{split}")
