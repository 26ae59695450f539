"""TFDS / ArrayRecord copies of any `ClipSource`, built and read without TensorFlow.

`build(src, ...)` writes one split of a ClipSource as a TFDS dataset in
ArrayRecord files (`GeneratorBasedBuilder.download_and_prepare(file_format=
"array_record")`); `tfds_source(name, split, ...)` reads it back through
`tfds.data_source` and returns a `TfdsClipSource` that yields the same dicts as
ClipSource (`audio [N]` float32, `labels [C]`, `label_mask [C]`, `index`) and
has `sample_rate`, `class_names`, `num_classes`, `multi_label`, so
`kdjax.data.pipeline` runs on it unchanged.

Layout: `<data_dir>/kdjax_<dataset>/<config>/<version>/` where `config` is the
split name plus the source keyword arguments (e.g. `train_fold1-subset_esc10`);
each split is its own config so splits can be built lazily, one at a time.

Stored features (STACK-NOTES: `tfds.features.Audio` needs TensorFlow, so plain
tensors are used):
  audio         Tensor(shape=(None,), float32 | int16)  int16 = PCM16 * 32768,
                only when exact (raises otherwise)
  labels        Tensor(shape=(C,), float32)
  label_mask    Tensor(shape=(C,), float32)
  source_index  int32: position in the ClipSource (== position in the TFDS split:
                shuffling is disabled, so order is kept)
Sample rate, class names and multi_label are kept in the dataset metadata.

Source: TFDS docs "Creating your own dataset" / "tfds.data_source" (grain random access).
"""

from __future__ import annotations

import os
import pathlib
import re
from collections.abc import Iterator
from typing import Any

import numpy as np

VERSION = "1.0.0"


def config_name(split: str, source_kw: dict[str, Any] | None = None) -> str:
    """TFDS config name for a split + source keyword arguments (only [a-z0-9_.-])."""
    parts = [split] + [f"{k}_{v}" for k, v in sorted((source_kw or {}).items())]
    name = "-".join(parts).lower()
    return re.sub(r"[^a-z0-9_.-]", "_", name)


def tfds_split_name(split: str) -> str:
    """TFDS reserves the split name "all"; it is stored as "all_clips"."""
    return "all_clips" if split == "all" else split


def _builder_class(dataset_name: str, src, audio_dtype: str):
    import tensorflow_datasets as tfds

    num_classes = src.num_classes
    meta = {
        "sample_rate": int(src.sample_rate),
        "class_names": list(src.class_names),
        "multi_label": bool(src.multi_label),
        "source_name": str(getattr(src, "name", "")),
    }
    dtype = np.int16 if audio_dtype == "int16" else np.float32

    class _Builder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version(globals()["VERSION"])

        def _info(self) -> tfds.core.DatasetInfo:
            return self.dataset_info_from_configs(
                description=f"kdjax copy of {meta['source_name'] or dataset_name}",
                features=tfds.features.FeaturesDict(
                    {
                        "audio": tfds.features.Tensor(shape=(None,), dtype=dtype),
                        "labels": tfds.features.Tensor(shape=(num_classes,), dtype=np.float32),
                        "label_mask": tfds.features.Tensor(shape=(num_classes,), dtype=np.float32),
                        "source_index": np.int32,
                    }
                ),
                disable_shuffling=True,  # keep ClipSource order: TFDS index == source index
                metadata=tfds.core.MetadataDict(meta),
            )

        def _split_generators(self, dl_manager):
            return {tfds_split_name(self.builder_config.name.split("-")[0]): self._generate_examples()}

        def _generate_examples(self) -> Iterator[tuple[int, dict[str, Any]]]:
            for i in range(len(src)):
                ex = src[i]
                audio = np.asarray(ex["audio"], np.float32)
                if dtype == np.int16:
                    q = np.round(audio * 32768.0)
                    if np.any(q != audio * 32768.0) or q.max(initial=0) > 32767 or q.min(initial=0) < -32768:
                        raise ValueError(
                            f"tfds_builder: clip {i} of {meta['source_name']} is not exact 16-bit PCM; "
                            "use audio_dtype='float32'"
                        )
                    audio = q.astype(np.int16)
                yield i, {
                    "audio": audio,
                    "labels": np.asarray(ex["labels"], np.float32),
                    "label_mask": np.asarray(ex["label_mask"], np.float32),
                    "source_index": np.int32(i),
                }

    _Builder.name = f"kdjax_{dataset_name}"
    return _Builder


def build(
    src,
    *,
    dataset_name: str,
    split: str,
    data_dir: str | os.PathLike,
    source_kw: dict[str, Any] | None = None,
    audio_dtype: str = "float32",
) -> pathlib.Path:
    """Writes `src` (one split of a ClipSource) as ArrayRecord TFDS data; returns its folder.

    Args:
      src: any ClipSource-like source (`__len__`, `__getitem__`, sample_rate,
        class_names, num_classes, multi_label).
      dataset_name: kdjax dataset module name (TFDS name becomes `kdjax_<name>`).
      split: the split name stored.
      data_dir: TFDS data dir.
      source_kw: the source keyword arguments (part of the config name).
      audio_dtype: "float32" (exact for any source) or "int16" (half the size,
        only for 16-bit PCM sources; ValueError otherwise).

    Raises:
      ValueError: bad audio_dtype or lossy int16 conversion.
    """
    import tensorflow_datasets as tfds

    if audio_dtype not in ("float32", "int16"):
        raise ValueError(f"tfds_builder: audio_dtype={audio_dtype!r}, expected 'float32' or 'int16'")
    cls = _builder_class(dataset_name, src, audio_dtype)
    cfg = config_name(split, source_kw)
    cls.BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=cfg, version=VERSION)]
    builder = cls(data_dir=os.fspath(data_dir), config=cfg)
    builder.download_and_prepare(file_format="array_record")
    return pathlib.Path(builder.data_dir)


class TfdsClipSource:
    """Random-access source over a kdjax TFDS split, yielding ClipSource-format dicts.

    Element i: `audio` float32 `[N]` (int16 storage converted by /32768),
    `labels` `[C]`, `label_mask` `[C]`, `index` int32 (the ClipSource index).
    """

    def __init__(self, data_source, info, *, name: str = ""):
        self._ds = data_source
        md = info.metadata
        self.sample_rate = int(md["sample_rate"])
        self.class_names = list(md["class_names"])
        self.num_classes = len(self.class_names)
        self.multi_label = bool(md["multi_label"])
        self.name = name

    def __len__(self) -> int:
        return len(self._ds)

    def __repr__(self) -> str:
        return f"TfdsClipSource({self.name!r}, {len(self)} clips, {self.num_classes} classes, {self.sample_rate} Hz)"

    def __getitem__(self, i: int) -> dict[str, Any]:
        ex = self._ds[int(i)]
        audio = np.asarray(ex["audio"])
        audio = audio.astype(np.float32) / 32768.0 if audio.dtype == np.int16 else audio.astype(np.float32)
        return {
            "audio": audio,
            "labels": np.asarray(ex["labels"], np.float32),
            "label_mask": np.asarray(ex["label_mask"], np.float32),
            "index": np.int32(ex["source_index"]),
        }

    def label_ids(self) -> np.ndarray:
        """Argmax class id per clip `[len]` (reads every record)."""
        return np.array([int(np.argmax(self._ds[i]["labels"])) for i in range(len(self))])


def tfds_source(
    dataset_name: str,
    split: str,
    *,
    data_dir: str | os.PathLike,
    build_if_missing: bool = True,
    audio_dtype: str = "float32",
    raw_data_dir: str | os.PathLike | None = None,
    **source_kw,
) -> TfdsClipSource:
    """The TFDS/ArrayRecord copy of `kdjax.data.<dataset_name>.source(split, **source_kw)`.

    Builds it first (decoding every clip of the split once) when it is missing
    and `build_if_missing`; reads it with `tfds.data_source` (no TensorFlow).

    Args:
      dataset_name: kdjax dataset module (e.g. "fsdd", "esc50").
      split: split name of that module.
      data_dir: TFDS data dir (where `kdjax_<dataset_name>/` lives).
      build_if_missing: build from the raw files when absent.
      audio_dtype: storage dtype when building ("float32" or "int16").
      raw_data_dir: where the raw dataset is read from when building (the
        source's `data_dir`; default `data_root()`); not part of the config name.
      **source_kw: passed to the dataset's `source()` (and part of the config name).

    Raises:
      DatasetNotFoundError: not built and `build_if_missing=False` (names the path),
        or the raw dataset is missing.
      ValueError: unknown dataset/split.
    """
    import tensorflow_datasets as tfds

    from kdjax.data.audio import DatasetNotFoundError
    from kdjax.data.base import get_source

    cfg = config_name(split, source_kw)
    builder_dir = pathlib.Path(data_dir) / f"kdjax_{dataset_name}" / cfg / VERSION
    if not (builder_dir / "dataset_info.json").is_file():
        if not build_if_missing:
            raise DatasetNotFoundError(
                f"tfds_source: {builder_dir} not built; run `python -m kdjax.data.prepare "
                f"--dataset {dataset_name} --tfds_dir {data_dir}` or pass build_if_missing=True"
            )
        raw = {"data_dir": raw_data_dir} if raw_data_dir is not None else {}
        src = get_source(dataset_name, split, **raw, **source_kw)
        build(src, dataset_name=dataset_name, split=split, data_dir=data_dir,
              source_kw=source_kw, audio_dtype=audio_dtype)
    builder = tfds.builder_from_directory(builder_dir)
    ds = builder.as_data_source(split=tfds_split_name(split))
    return TfdsClipSource(ds, builder.info, name=f"tfds:{dataset_name}/{cfg}")
