"""Check a dataset archive's layout, print counts per split and class, build its TFDS copy.

    python -m kdjax.data.prepare --dataset NAME --source DIR [--tfds_dir DIR]
        [--splits a,b] [--kw key=value,...] [--audio_dtype float32|int16]

`--source` is the folder that holds the dataset folder (`DIR/<name>/...`, the
layout each module's docstring names). Every requested split is parsed (which
checks the metadata and that every listed clip exists); with `--tfds_dir` each
split is also written as TFDS ArrayRecord (`kdjax.data.tfds_builder`).
Exit status 1 with a one-line message when the layout is wrong.
"""

from __future__ import annotations

import sys

import numpy as np
from absl import app, flags

from kdjax.data.audio import DatasetNotFoundError

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", None, "kdjax dataset module name, e.g. esc50, speech_commands, fsdd")
flags.DEFINE_string("source", None, "folder containing the dataset folder (the data root)")
flags.DEFINE_string("tfds_dir", None, "where to write the TFDS/ArrayRecord copy (optional)")
flags.DEFINE_list("splits", None, "splits to check/build (default: the dataset's standard ones)")
flags.DEFINE_list("kw", [], "extra source() keyword arguments, key=value (e.g. subset=esc10)")
flags.DEFINE_enum("audio_dtype", "float32", ["float32", "int16"], "TFDS audio storage dtype")
flags.mark_flags_as_required(["dataset", "source"])

DEFAULT_SPLITS = {
    "fsdd": ["train", "validation", "test"],
    "esc50": [f"fold{k}" for k in range(1, 6)],
    "esc10_mix": [f"fold{k}" for k in range(1, 6)],
    "urbansound8k": [f"fold{k}" for k in range(1, 11)],
    "speech_commands": ["train", "validation", "test"],
    "noisy_speech_commands": ["train", "validation", "test"],
    "audiomnist": ["train", "validation", "test"],
    "sonyc_ust": ["train", "validate"],
    "openmic": ["train", "test"],
    "magnatagatune": ["train", "validation", "test"],
    "dcase_scenes": ["train", "evaluate"],
    "fsd50k": ["train", "validation", "test"],
}


def _parse_kw(items: list[str]) -> dict:
    out = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep:
            raise ValueError(f"--kw {it!r}: expected key=value")
        for cast in (int, float):
            try:
                v = cast(v)
                break
            except ValueError:
                pass
        out[k] = {"True": True, "False": False}.get(v, v) if isinstance(v, str) else v
    return out


def counts_table(src) -> str:
    """One line per class: name and number of clips with that class positive."""
    y = np.stack([np.asarray(r.labels) > 0.5 for r in src.records])
    return "\n".join(f"    {n:<32s} {int(c)}" for n, c in zip(src.class_names, y.sum(0)))


def main(argv):
    del argv
    from kdjax.data import tfds_builder
    from kdjax.data.base import get_source

    kw = _parse_kw(FLAGS.kw)
    splits = FLAGS.splits or DEFAULT_SPLITS.get(FLAGS.dataset, ["train", "test"])
    try:
        for split in splits:
            src = get_source(FLAGS.dataset, split, data_dir=FLAGS.source, **kw)
            print(f"{FLAGS.dataset}/{split}: {len(src)} clips, {src.num_classes} classes, {src.sample_rate} Hz")
            print(counts_table(src))
            if FLAGS.tfds_dir:
                path = tfds_builder.build(src, dataset_name=FLAGS.dataset, split=split, data_dir=FLAGS.tfds_dir,
                                          source_kw=kw, audio_dtype=FLAGS.audio_dtype)
                print(f"  -> TFDS ArrayRecord at {path}")
    except (DatasetNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
