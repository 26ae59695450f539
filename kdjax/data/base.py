"""Clip sources: the one record format every dataset module produces.

A source is a grain `RandomAccessDataSource` (`__len__`, `__getitem__`) over
labelled audio clips. Element `i` is a dict:
  audio       float32 `[N]` waveform at `source.sample_rate` Hz (variable N)
  labels      float32 `[C]` class probabilities (one-hot, multi-hot or soft)
  label_mask  float32 `[C]` 1 where the label is known, 0 where it is missing
  index       int, position in the source (stable across epochs)
Dataset modules (`kdjax/data/<name>.py`) expose `source(split, **kw) -> ClipSource`
and are found by module name through `kdjax.data.get_source`.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from kdjax.data.audio import DatasetNotFoundError, load_audio

_REPO = pathlib.Path(__file__).resolve().parents[2]


def data_root() -> pathlib.Path:
    """Where datasets are read from (and downloaded to).

    Order: `$KDJAX_DATA_DIR`; `../shared/data` next to the kdjax checkout;
    `../shared/data` next to the working directory; else `~/kdjax_data`
    (created on download).
    """
    env = os.environ.get("KDJAX_DATA_DIR")
    if env:
        return pathlib.Path(env).expanduser()
    for cand in (_REPO.parent / "shared" / "data", pathlib.Path.cwd().parent / "shared" / "data"):
        if cand.is_dir():
            return cand
    return pathlib.Path("~/kdjax_data").expanduser()


@dataclasses.dataclass(frozen=True)
class ClipRecord:
    """One clip: file path, label(s) and free-form metadata (speaker, fold, ...).

    `labels` is a float `[C]` probability vector; `label_mask` `[C]` marks known labels.
    """

    path: str
    labels: np.ndarray
    label_mask: np.ndarray | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


def one_hot(label: int, num_classes: int) -> np.ndarray:
    """Integer class id -> float32 one-hot `[num_classes]`; raises ValueError when out of range."""
    if not 0 <= int(label) < num_classes:
        raise ValueError(f"label {label} out of range [0, {num_classes})")
    v = np.zeros(num_classes, np.float32)
    v[int(label)] = 1.0
    return v


class ClipSource:
    """A grain random-access source over `ClipRecord`s, decoding with `load_audio`.

    Args:
      records: the clips.
      sample_rate: the rate (Hz) every file must have; a file with another rate
        raises `AudioError` naming it.
      class_names: `[C]` names; `C` fixes the label size.
      multi_label: whether several classes can be active (tagging).
      cache: decode every clip once, on first use, and keep it in memory
        (small corpora such as FSDD: ~50 MB).
      name: dataset/split name for messages.
    """

    def __init__(
        self,
        records: Sequence[ClipRecord],
        *,
        sample_rate: int,
        class_names: Sequence[str],
        multi_label: bool = False,
        cache: bool = False,
        name: str = "",
    ):
        if not records:
            raise DatasetNotFoundError(f"{name or 'dataset'}: no clips found for this split")
        self.records = list(records)
        self.sample_rate = int(sample_rate)
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.multi_label = multi_label
        self.name = name
        self._cache: list[np.ndarray] | None = None
        self._want_cache = cache

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"ClipSource({self.name!r}, {len(self)} clips, {self.num_classes} classes, {self.sample_rate} Hz)"

    def load(self, i: int) -> np.ndarray:
        """Decoded float32 waveform `[N]` of clip i (cached if `cache=True`)."""
        if self._want_cache:
            if self._cache is None:
                self._cache = [
                    load_audio(r.path, expected_sr=self.sample_rate) for r in self.records
                ]
            return self._cache[i]
        return load_audio(self.records[i].path, expected_sr=self.sample_rate)

    def __getitem__(self, i: int) -> dict[str, Any]:
        i = int(i)
        r = self.records[i]
        mask = r.label_mask if r.label_mask is not None else np.ones(self.num_classes, np.float32)
        return {
            "audio": self.load(i),
            "labels": np.asarray(r.labels, np.float32),
            "label_mask": np.asarray(mask, np.float32),
            "index": np.int32(i),
        }

    def label_ids(self) -> np.ndarray:
        """Argmax class id per clip `[len]` (single-label datasets)."""
        return np.array([int(np.argmax(r.labels)) for r in self.records])


def check_source_kwargs(name: str, fn, kwargs: dict[str, Any]) -> None:
    """Raises a one-line ValueError if `fn` (a module's `source`) does not take every key of
    `kwargs`, or needs a keyword that `kwargs` lacks.

    The keywords come from `inspect.signature(fn)` (all but the leading `split`); a
    `source` with `**kwargs` accepts any key.
    """
    params = [
        p
        for p in inspect.signature(fn).parameters.values()
        if p.name != "split" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    valid = [p.name for p in params]
    takes_any = any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(fn).parameters.values()
    )
    unknown = [] if takes_any else [k for k in kwargs if k not in valid]
    missing = [
        p.name for p in params if p.default is inspect.Parameter.empty and p.name not in kwargs
    ]
    problems = ([f"unknown keyword(s) {unknown} in data.kw"] if unknown else []) + (
        [f"missing required keyword(s) {missing} in data.kw"] if missing else []
    )
    if problems:
        raise ValueError(
            f"data.name={name!r}: {'; '.join(problems)}; valid keywords of "
            f"kdjax.data.{name}.source: {sorted(valid)} (plus max_examples)"
        )


def get_source(name: str, split: str, *, max_examples: int | None = None, **kwargs) -> ClipSource:
    """Finds `kdjax.data.<name>` and returns its `source(split, **kwargs)`.

    Args:
      name: dataset module name (`kdjax/data/<name>.py`).
      split: split name understood by that module.
      max_examples: keep at most this many clips, evenly strided over the split's
        (deterministic) order, for quick runs and tests.
      **kwargs: passed to the module's `source` (a config's `data.kw`).

    Raises:
      ValueError: no dataset module of that name, a keyword the module's `source`
        does not take (one line naming the keyword and the valid ones, e.g. FSDD's
        `allow_download` left in `data.kw` after switching `data.name`), or a required
        keyword missing (e.g. the folder source's `sample_rate`).
    """
    try:
        mod = importlib.import_module(f"kdjax.data.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"kdjax.data.{name}":
            raise
        raise ValueError(f"data.name={name!r}: no dataset module kdjax/data/{name}.py") from None
    check_source_kwargs(name, mod.source, kwargs)
    src = mod.source(split, **kwargs)
    if max_examples and len(src) > max_examples:
        stride = -(-len(src) // max_examples)
        src.records = src.records[::stride]
        src._cache = None
    return src
