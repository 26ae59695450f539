"""DCASE acoustic scene classification (2018/2019 Task 1A, TUT/TAU Urban Acoustic Scenes).

Source: A. Mesaros, T. Heittola, T. Virtanen, "A multi-device dataset for urban
acoustic scene classification", DCASE 2018; zenodo (TUT Urban Acoustic Scenes
2018 Development / TAU Urban Acoustic Scenes 2019 Development). 10 s clips,
10 scenes, 48 kHz. Layout under `<data_root>/dcase_scenes/` (or the archive's
own folder name):
  meta.csv                               tab-separated: filename, scene_label, identifier, source_label
  evaluation_setup/fold1_train.csv       tab-separated: filename, scene_label
  evaluation_setup/fold1_evaluate.csv    tab-separated: filename, scene_label
  audio/*.wav                            `filename` already includes `audio/`
Splits: train (fold1_train), validation / evaluate (fold1_evaluate; the
official development-set test), all (meta.csv). The official setup keeps
recording locations (`identifier`) disjoint between train and evaluate.
Class names: sorted scene labels of meta.csv; labels one-hot `[10]`.
"""

from __future__ import annotations

import os

from kdjax.data._helpers import dataset_dir, read_table, require, unknown_split
from kdjax.data.base import ClipRecord, ClipSource, one_hot

SAMPLE_RATE = 48000
SPLITS = {"train": "fold1_train.csv", "evaluate": "fold1_evaluate.csv",
          "validation": "fold1_evaluate.csv", "all": None}
_HINT = ("Download the TAU Urban Acoustic Scenes 2019 (or TUT 2018) Development archives from "
         "https://zenodo.org/record/2589280 and unpack them into <data_root>/dcase_scenes/ "
         "(meta.csv, evaluation_setup/, audio/).")


def source(split: str, *, data_dir: str | os.PathLike | None = None, sample_rate: int = SAMPLE_RATE,
           cache: bool = False) -> ClipSource:
    """DCASE scene clips of `split`; labels one-hot `[10]`; meta {identifier, source_label}.

    Raises:
      DatasetNotFoundError: meta.csv, the fold file or a clip missing.
      ValueError: unknown split, missing columns, a scene not in meta.csv.
    """
    if split not in SPLITS:
        raise unknown_split("dcase_scenes", split, SPLITS)
    root = dataset_dir(data_dir, "dcase_scenes", "TAU-urban-acoustic-scenes-2019-development",
                       "TUT-urban-acoustic-scenes-2018-development")
    meta = read_table(root / "meta.csv", ("filename", "scene_label"), dataset="dcase_scenes",
                      delimiter="\t", hint=_HINT)
    names = sorted({r["scene_label"] for r in meta})
    by_file = {r["filename"]: r for r in meta}
    rows = meta if SPLITS[split] is None else read_table(
        root / "evaluation_setup" / SPLITS[split], ("filename", "scene_label"),
        dataset="dcase_scenes", delimiter="\t", hint=_HINT)
    recs = []
    for r in rows:
        if r["scene_label"] not in names:
            raise ValueError(f"dcase_scenes: scene {r['scene_label']!r} of {r['filename']} not in meta.csv")
        m = by_file.get(r["filename"], {})
        path = require(root / r["filename"], "dcase_scenes", _HINT)
        recs.append(ClipRecord(str(path), one_hot(names.index(r["scene_label"]), len(names)), meta={
            "identifier": m.get("identifier", ""), "source_label": m.get("source_label", "")}))
    return ClipSource(recs, sample_rate=sample_rate, class_names=names, cache=cache,
                      name=f"dcase_scenes/{split}")
