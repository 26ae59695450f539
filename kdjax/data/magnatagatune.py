"""MagnaTagATune (MTAT): 25863 29 s music clips, the top-50 tag task, 16 kHz mp3.

Source: E. Law et al., "Evaluation of algorithms using games: the case of music
tagging", ISMIR 2009; mirg.city.ac.uk/codeapps/the-magnatagatune-dataset.
Layout: `<data_root>/magnatagatune/annotations_final.csv` (tab-separated:
clip_id, 188 tag columns 0/1, mp3_path like `f/artist-album-01-title-0-29.mp3`)
+ `mp3/` (or `audio/`) holding the 16 hex folders 0..f (decoded `.wav`/`.flac`
copies with the same stem are also found).

Top-50: the 50 tags with most positive clips over the whole file (ties by
column order), in descending frequency. Standard split (Dieleman & Schrauwen
2014; Won et al. 2020) by the mp3 folder's first hex character:
0-b train (12 folders), c validation (1), d-f test (3); `all`.
Labels multi-hot `[50]`; clips with none of the 50 tags are kept unless
`drop_untagged=True`.
"""

from __future__ import annotations

import os

import numpy as np

from kdjax.data._helpers import dataset_dir, find_audio, read_table, unknown_split
from kdjax.data.audio import DatasetNotFoundError
from kdjax.data.base import ClipRecord, ClipSource

SAMPLE_RATE = 16000
NUM_TAGS = 50
SPLIT_DIRS = {"train": set("0123456789ab"), "validation": {"c"}, "test": set("def"),
              "all": set("0123456789abcdef")}
_HINT = ("Download mp3.zip.001-003 and annotations_final.csv from "
         "https://mirg.city.ac.uk/codeapps/the-magnatagatune-dataset into <data_root>/magnatagatune/ "
         "(cat mp3.zip.* > mp3.zip; unzip into mp3/).")


def source(split: str, *, num_tags: int = NUM_TAGS, drop_untagged: bool = False,
           data_dir: str | os.PathLike | None = None, check_files: bool = True,
           cache: bool = False) -> ClipSource:
    """MTAT clips of `split`, multi-hot `[num_tags]` labels over the most frequent tags.

    Args:
      check_files: verify every clip exists when building the source (set False
        to skip the ~26k stat calls).

    Raises:
      DatasetNotFoundError: annotations or a clip missing (names the path and the download).
      ValueError: unknown split, missing columns, non-0/1 tag values.
    """
    if split not in SPLIT_DIRS:
        raise unknown_split("magnatagatune", split, SPLIT_DIRS)
    root = dataset_dir(data_dir, "magnatagatune", "MagnaTagATune")
    csv_path = root / "annotations_final.csv"
    rows = read_table(csv_path, ("clip_id", "mp3_path"), dataset="magnatagatune", delimiter="\t", hint=_HINT)
    tags = [c for c in rows[0] if c not in ("clip_id", "mp3_path")]
    try:
        y = np.array([[int(r[t]) for t in tags] for r in rows], np.int8)
    except ValueError:
        raise ValueError(f"magnatagatune: {csv_path}: tag columns must hold 0/1") from None
    counts = y.sum(0)
    top = sorted(range(len(tags)), key=lambda j: (-counts[j], j))[:num_tags]
    audio_dir = root / "mp3" if (root / "mp3").is_dir() else root / "audio"
    dirs = SPLIT_DIRS[split]
    recs = []
    for r, yr in zip(rows, y):
        mp3 = r["mp3_path"]
        if not mp3 or mp3[0] not in dirs:
            continue
        labels = yr[top].astype(np.float32)
        if drop_untagged and labels.sum() == 0:
            continue
        path = audio_dir / mp3
        if check_files:
            found = find_audio(audio_dir, mp3)
            if found is None:
                raise DatasetNotFoundError(f"magnatagatune: {path} not found. {_HINT}")
            path = found
        recs.append(ClipRecord(str(path), labels, meta={"clip_id": r["clip_id"], "dir": mp3[0]}))
    return ClipSource(recs, sample_rate=SAMPLE_RATE, class_names=[tags[j] for j in top],
                      multi_label=True, cache=cache, name=f"magnatagatune/{split}")
