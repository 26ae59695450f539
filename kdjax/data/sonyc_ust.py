"""SONYC Urban Sound Tagging (DCASE 2019 Task 5): 10 s city recordings, multi-label.

Source: M. Cartwright et al., "SONYC Urban Sound Tagging (SONYC-UST): a
multilabel dataset from an urban acoustic sensor network", DCASE 2019;
zenodo.org/record/3338310 (v1/v2), baseline github.com/sonyc-project/urban-sound-tagging-baseline.
Layout: `<data_root>/sonyc_ust/annotations.csv` + audio in `audio/`, or in
`train/` / `validate/` (the audio-dev archive), 44.1 kHz.

annotations.csv has one row per (clip, annotator): columns split,
audio_filename, annotator_id and `{coarse}_{name}_presence` (8 coarse classes),
`{coarse}-{fine}_{name}_presence` (23 fine classes + one `{coarse}-X` "other/unknown"
column per coarse class). Values 1/0, -1 = not annotated.

Labels (our choices, documented):
  * rows with annotator_id == 0 (the SONYC team's verified labels; the official
    evaluation ground truth of the validate set) are used alone when a clip has
    them; otherwise crowd rows (annotator_id > 0) are aggregated with
    `aggregate="any"` (positive when any annotator says present; the baseline's
    recall-oriented choice) or "majority" (> half of the annotators).
  * level="coarse": `[8]`; level="fine": `[23]` complete fine classes. When a
    clip's `{c}-X` (incomplete) tag is positive, the fine classes of coarse c
    that are not positive are unknown -> label_mask 0 (the official metric
    evaluates such clips only at the coarse level). -1 entries are masked too.

Splits: values of the split column: train, validate (alias validation), test (v2), all.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict

import numpy as np

from kdjax.data._helpers import dataset_dir, find_audio, read_table, unknown_split
from kdjax.data.audio import DatasetNotFoundError
from kdjax.data.base import ClipRecord, ClipSource

SAMPLE_RATE = 44100
_COARSE = re.compile(r"^(\d+)_([a-z0-9-]+)_presence$")
_FINE = re.compile(r"^(\d+)-(\d+|X)_([a-z0-9-]+)_presence$")
_HINT = ("Download annotations.csv and audio-dev.tar.gz (SONYC-UST, DCASE 2019 Task 5) from "
         "https://zenodo.org/record/3338310 and unpack into <data_root>/sonyc_ust/ "
         "(annotations.csv, train/, validate/).")


def _columns(fields):
    coarse = sorted((int(m[1]), f, m[2]) for f in fields if (m := _COARSE.match(f)))
    fine = sorted((int(m[1]), int(m[2]), f, m[3]) for f in fields if (m := _FINE.match(f)) and m[2] != "X")
    incomplete = {int(m[1]): f for f in fields if (m := _FINE.match(f)) and m[2] == "X"}
    return coarse, fine, incomplete


def source(split: str, *, level: str = "coarse", aggregate: str = "any",
           data_dir: str | os.PathLike | None = None, sample_rate: int = SAMPLE_RATE,
           cache: bool = False) -> ClipSource:
    """SONYC-UST clips of `split`, multi-hot labels `[8]` (coarse) or `[23]` (fine) + label_mask.

    Raises:
      DatasetNotFoundError: annotations.csv or a clip missing (names the path and the download).
      ValueError: unknown split/level/aggregate, no presence columns, bad values.
    """
    if level not in ("coarse", "fine") or aggregate not in ("any", "majority"):
        raise ValueError(f"sonyc_ust: level={level!r} aggregate={aggregate!r}; expected "
                         "level in (coarse, fine), aggregate in (any, majority)")
    root = dataset_dir(data_dir, "sonyc_ust", "sonyc-ust")
    csv_path = root / "annotations.csv"
    rows = read_table(csv_path, ("split", "audio_filename", "annotator_id"), dataset="sonyc_ust", hint=_HINT)
    coarse, fine, incomplete = _columns(rows[0].keys())
    if not coarse or not fine:
        raise ValueError(f"sonyc_ust: {csv_path} has no '<n>_<name>_presence' / '<n>-<m>_<name>_presence' columns")
    splits = sorted({r["split"] for r in rows})
    want = "validate" if split == "validation" else split
    if want != "all" and want not in splits:
        raise unknown_split("sonyc_ust", split, splits + ["all", "validation"])
    cols = [c[1] for c in coarse] if level == "coarse" else [f[2] for f in fine]
    names = [f"{c[0]}_{c[2]}" for c in coarse] if level == "coarse" else [f"{f[0]}-{f[1]}_{f[3]}" for f in fine]
    groups = [f[0] for f in fine]
    by_clip: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        if want == "all" or r["split"] == want:
            by_clip[r["audio_filename"]].append(r)

    def vals(rs, col):
        return np.array([float(r[col]) if r[col] not in ("", "-1") else np.nan for r in rs])

    recs = []
    for fname in sorted(by_clip):
        rs = by_clip[fname]
        verified = [r for r in rs if int(r["annotator_id"]) == 0]
        rs = verified or [r for r in rs if int(r["annotator_id"]) > 0] or rs

        def agg(col):
            v = vals(rs, col)
            known = v[~np.isnan(v)]
            if known.size == 0:
                return 0.0, 0.0
            pos = known.sum() > 0 if aggregate == "any" else known.sum() > known.size / 2
            return float(pos), 1.0

        lm = [agg(c) for c in cols]
        labels = np.array([x[0] for x in lm], np.float32)
        mask = np.array([x[1] for x in lm], np.float32)
        if level == "fine":
            for c, xcol in incomplete.items():
                if agg(xcol)[0] > 0:
                    for j, g in enumerate(groups):
                        if g == c and labels[j] == 0:
                            mask[j] = 0.0
        d = root / rs[0]["split"]
        path = find_audio(root / "audio", fname) or find_audio(d, fname)
        if path is None:
            raise DatasetNotFoundError(f"sonyc_ust: clip {fname} not found in {root / 'audio'} or {d}. {_HINT}")
        recs.append(ClipRecord(str(path), labels, mask, meta={
            "split": rs[0]["split"], "sensor_id": rs[0].get("sensor_id", ""), "num_annotators": len(rs),
            "verified": bool(verified)}))
    return ClipSource(recs, sample_rate=sample_rate, class_names=names, multi_label=True,
                      cache=cache, name=f"sonyc_ust/{level}/{split}")
