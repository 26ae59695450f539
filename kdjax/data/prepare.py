"""Check a dataset archive's layout and audio, print counts per split and class, build its TFDS copy.

    python -m kdjax.data.prepare --dataset NAME --source DIR [--tfds_dir DIR]
        [--splits a,b] [--kw key=value,...] [--audio_dtype float32|int16] [--nocheck_audio]

`--source` is the folder that holds the dataset folder (`DIR/<name>/...`, the
layout each module's docstring names); for `--dataset folder` (your own audio +
CSV) it is the corpus folder itself (the folder source's `root`, or the base of
a relative `--kw root=`), e.g.

    python -m kdjax.data.prepare --dataset folder --source /data/mycorpus \
        --kw csv=labels.csv,audio_dir=audio,split_column=set,sample_rate=16000

Every requested split (default: the dataset's standard ones; for `folder`, the
ones its CSV defines, see `kdjax.data.folder.default_splits`) is parsed, which
checks the metadata and that every listed clip exists; then every clip is
decoded (unless `--nocheck_audio`), at the declared sample rate, and each bad
file (unreadable, truncated, empty, another rate) is reported on one line.
With `--tfds_dir` each split is also written as TFDS ArrayRecord
(`kdjax.data.tfds_builder`), after a clean check.
Exit status 1 with a one-line message when the layout is wrong, or with one
`bad audio:` line per bad file and a final count.
"""

from __future__ import annotations

import importlib
import sys
import time

import numpy as np
from absl import app, flags

from kdjax.data.audio import AudioError, DatasetNotFoundError

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", None, "kdjax dataset module name, e.g. esc50, speech_commands, fsdd")
flags.DEFINE_string("source", None, "folder containing the dataset folder (the data root)")
flags.DEFINE_string("tfds_dir", None, "where to write the TFDS/ArrayRecord copy (optional)")
flags.DEFINE_list("splits", None, "splits to check/build (default: the dataset's standard ones)")
flags.DEFINE_list("kw", [], "extra source() keyword arguments, key=value (e.g. subset=esc10)")
flags.DEFINE_enum("audio_dtype", "float32", ["float32", "int16"], "TFDS audio storage dtype")
flags.DEFINE_bool("check_audio", True, "decode every clip and report the bad files")
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
    return "\n".join(
        f"    {n:<32s} {int(c)}" for n, c in zip(src.class_names, y.sum(0), strict=True)
    )


def default_splits(dataset: str, source: str, kw: dict) -> list[str]:
    """The splits checked without `--splits`: the module's `default_splits(data_dir=, **kw)`
    when it has one (splits that depend on the data, e.g. the folder source's CSV), else
    `DEFAULT_SPLITS[dataset]`, else train and test."""
    try:
        mod = importlib.import_module(f"kdjax.data.{dataset}")
    except ModuleNotFoundError:
        mod = None  # get_source reports the unknown dataset name
    if mod is not None and hasattr(mod, "default_splits"):
        return mod.default_splits(data_dir=source, **kw)
    return DEFAULT_SPLITS.get(dataset, ["train", "test"])


def check_audio(srcs: dict) -> tuple[int, list[str]]:
    """Decodes every clip of every source once, at the source's declared rate.

    Args:
      srcs: split name -> ClipSource.

    Returns:
      (number of distinct audio files decoded, one message per bad file: the
      `AudioError`, which names the file and what is wrong).
    """
    from kdjax.data.base import ClipSource

    seen: set = set()
    bad: list[str] = []
    for split, src in srcs.items():
        plain = type(src).load is ClipSource.load  # one record = one file
        for i, r in enumerate(src.records):
            key = r.path if plain else (split, i)
            if key in seen:
                continue
            seen.add(key)
            try:
                src.load(i)
            except (AudioError, OSError) as e:
                bad.append(str(e).splitlines()[0] if str(e) else f"{r.path}: {type(e).__name__}")
    return len(seen), bad


def main(argv):
    del argv
    from kdjax.data.base import get_source

    try:
        kw = _parse_kw(FLAGS.kw)
        splits = FLAGS.splits or default_splits(FLAGS.dataset, FLAGS.source, kw)
        srcs = {}
        for split in splits:
            src = get_source(FLAGS.dataset, split, data_dir=FLAGS.source, **kw)
            srcs[split] = src
            print(
                f"{FLAGS.dataset}/{split}: {len(src)} clips, {src.num_classes} classes, {src.sample_rate} Hz"
            )
            print(counts_table(src))
    except (DatasetNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    if FLAGS.check_audio:
        t0 = time.time()
        n, bad = check_audio(srcs)
        for msg in bad:
            print(f"bad audio: {msg}", file=sys.stderr)
        if bad:
            print(f"error: {len(bad)} of {n} audio files are bad (listed above)", file=sys.stderr)
            sys.exit(1)
        print(f"decoded {n} audio files, all good ({time.time() - t0:.1f} s)")
    if FLAGS.tfds_dir:
        from kdjax.data import tfds_builder

        for split, src in srcs.items():
            path = tfds_builder.build(
                src,
                dataset_name=FLAGS.dataset,
                split=split,
                data_dir=FLAGS.tfds_dir,
                source_kw=kw,
                audio_dtype=FLAGS.audio_dtype,
            )
            print(f"  -> TFDS ArrayRecord at {path}")


if __name__ == "__main__":
    app.run(main)
