"""Per-clip arrays joined to a source by clip index (cached teacher logits, embeddings, ...).

A `cache` stage (kdjax.train.cache) stores arrays `[N, ...]` in the order of a split's source,
one file per key: `<cache workdir>/arrays/<split>/<key>.npy`. A train config joins them with

    data.join = {"embedding": "{stage:cache}/arrays/{split}/embedding.npy"}

and each batch then carries `batch.embedding` `[B, ...]`, row `i` of the file for the clip
with source index `i`. The source configuration (dataset, split, `max_examples`, clip length)
must be the cache stage's: the row count is checked against the source length.

Offline KD: a frozen teacher whose outputs a cache stage stored is not run in the train step;
its config names the files instead (kdjax.train.program, `teachers.<t>.cached`):

    teachers.t.cached = {"logits": "{stage:cache}/arrays/{split}/logits.npy",
                         "feats": {"embedding": "{stage:cache}/arrays/{split}/embedding.npy"}}

`teacher_joins` turns these into joins under the batch keys `teacher/<t>/<output>`
(`teacher_key`), and the step reads `teacher.<t>.<output>` from them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from kdjax.data.audio import DatasetNotFoundError


def load_joined_arrays(join: Mapping[str, str], split: str, num_clips: int) -> dict[str, np.ndarray]:
    """Loads every joined array of one split.

    Args:
      join: `{key: path}`; `{split}` in a path is replaced by the split name.
      split: the split name.
      num_clips: the source's length; each array must have this many rows.

    Returns:
      `{key: array [num_clips, ...]}` (memory-mapped).

    Raises:
      DatasetNotFoundError: a file is missing (names it and the cache stage to run).
      ValueError: a key that would shadow a batch key, or a row count that differs from the
        source length (names the file and both counts).
    """
    out = {}
    for key, path in join.items():
        reserved = ("audio", "labels", "label_mask", "mask", "index", "views", "view")
        if key in reserved or key.startswith("features/"):
            raise ValueError(f"data.join.{key}: the name is reserved for the batch's own arrays")
        p = str(path).replace("{split}", split)
        if not os.path.isfile(p):
            raise DatasetNotFoundError(f"data.join.{key}: no file {p} (run the cache stage that writes it first)")
        arr = np.load(p, mmap_mode="r")
        if arr.shape[0] != num_clips:
            raise ValueError(f"data.join.{key}: {p} has {arr.shape[0]} rows but split {split!r} has "
                             f"{num_clips} clips (cache stage and train config must use the same data)")
        out[key] = arr
    return out


def teacher_key(teacher: str, output: str) -> str:
    """The batch key of a cached teacher output: `teacher/<teacher>/<output>` (e.g.
    `teacher/t/logits`, `teacher/t/feats.embedding`)."""
    return f"teacher/{teacher}/{output}"


def cached_outputs(name: str, teacher: Mapping[str, Any]) -> dict[str, str]:
    """`teachers.<name>.cached = {"logits": path, "feats": {key: path}}` checked and flattened to
    `{output: path}`, output `logits` or `feats.<key>` (empty if the teacher is not cached).

    Raises:
      ValueError: another output name, or a path that is not a string (names the field).
    """
    flat = {}
    for output, path in dict(teacher.get("cached", {}) or {}).items():
        if output == "feats" and hasattr(path, "items"):  # a dict or a ConfigDict
            flat |= {f"feats.{k}": v for k, v in dict(path).items()}
        elif output == "logits":
            flat[output] = path
        else:
            raise ValueError(f"teachers.{name}.cached.{output}: expected 'logits': <path> or "
                             "'feats': {<key>: <path>}")
    for output, path in flat.items():
        if not isinstance(path, str):
            raise ValueError(f"teachers.{name}.cached.{output}={path!r}: expected the path of a "
                             "cache stage's array, e.g. '{stage:cache}/arrays/{split}/logits.npy'")
    return flat


def teacher_joins(cfg: Mapping[str, Any]) -> dict[str, str]:
    """The joins `{batch key: path}` of every cached teacher output of a train config
    (`teachers.<t>.cached`, see `cached_outputs`).

    The cache stage computes each clip from its start (kdjax.train.cache), so the train split
    must be read the same way (`data.train_crop="start"`), or on its fixed views
    (`cache.views`; `data.train_crop="views"`, `data.views` the stored view parameters).

    Raises:
      ValueError: see `cached_outputs`; `train_crop="views"` without `data.views`; cached
        outputs with `data.train_crop` other than "start" or "views" (names the field).
    """
    out = {teacher_key(name, output): path
           for name, t in dict(cfg.get("teachers", {}) or {}).items()
           for output, path in cached_outputs(name, t).items()}
    data = cfg.get("data", {})
    crop = data.get("train_crop", "random")
    if out and crop not in ("start", "views"):
        raise ValueError(f"teachers.*.cached {sorted(out)} with data.train_crop={crop!r}: cached "
                         "teacher outputs are computed on the start of each clip "
                         "(data.train_crop='start') or on the cache stage's fixed views "
                         "(data.train_crop='views' with data.views)")
    if crop == "views" and not data.get("views"):
        raise ValueError("data.train_crop='views' needs data.views, the cache stage's view "
                         "parameters ('{stage:cache}/arrays/{split}/views.npy')")
    return out


# ---------------------------------------------------------------------------------------------
# Fixed augmentation views: V views per clip, drawn once, so that a cache stage's teacher outputs
# and the student's per-epoch draw see the same input.

VIEW_PARAMS = ("offset", "gain_db")  # the columns of views.npy `[N, V, 2]`


def draw_views(seed: int, index: int, num_samples: int, clip_samples: int, num_views: int, *,
               gain_db: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """The parameters of clip `index`'s V fixed views, a pure function of `(seed, index)`.

    The offset is drawn as `fit_length(mode="random")` draws a crop: a clip longer than
    `clip_samples` is cropped at `offset ~ U{0..N - clip_samples}`; a shorter one is padded with
    `-offset ~ U{0..clip_samples - N}` zeros in front (`offset <= 0`). The gain is
    `~ U[gain_db[0], gain_db[1]]` dB (`kdjax.augment.random_gain`'s distribution).

    Args:
      seed: the views' seed (`cache.views.seed`).
      index: the clip's source index.
      num_samples: N, the clip's length (samples).
      clip_samples: the model input length (samples).
      num_views: V >= 1.
      gain_db: (min, max) gain in dB; (0, 0) for none.

    Returns:
      `[V, 2]` float64: (offset in samples, gain in dB) per view (`VIEW_PARAMS`).

    Raises:
      ValueError: V < 1 or min gain > max gain.
    """
    if num_views < 1:
        raise ValueError(f"cache.views.num={num_views}: expected >= 1")
    lo, hi = (float(g) for g in gain_db)
    if lo > hi:
        raise ValueError(f"cache.views.gain_db=({lo}, {hi}): expected min <= max")
    rng = np.random.default_rng([int(seed), int(index)])
    excess = num_samples - clip_samples
    if excess >= 0:  # crop
        offset = rng.integers(0, excess + 1, num_views)
    else:  # pad in front
        offset = -rng.integers(0, -excess + 1, num_views)
    gain = rng.uniform(lo, hi, num_views)
    return np.stack([offset.astype(np.float64), gain], axis=-1)


def view_audio(wave: np.ndarray, clip_samples: int, view: np.ndarray) -> np.ndarray:
    """One view of a clip: `out[j] = g * wave[j + offset]` (zero outside the clip),
    `g = 10 ** (gain_db / 20)`.

    Args:
      wave: `[N]` waveform.
      clip_samples: the output length (samples).
      view: `(offset, gain_db)` (a row of `draw_views`).

    Returns:
      `[clip_samples]` float32 (with gain 0 dB and offset 0, `fit_length(wave, mode="start")`).
    """
    offset, gain_db = int(view[0]), float(view[1])
    out = np.zeros(clip_samples, np.float32)
    lo, hi = max(0, -offset), min(clip_samples, wave.shape[0] - offset)
    if hi > lo:
        out[lo:hi] = wave[lo + offset:hi + offset]
    return out * np.float32(10.0 ** (gain_db / 20.0)) if gain_db else out


def load_views(path: str, split: str, num_clips: int) -> np.ndarray:
    """The view parameters `[num_clips, V, 2]` a cache stage stored (`<workdir>/arrays/<split>/
    views.npy`; `{split}` in `path` is replaced).

    Raises:
      DatasetNotFoundError: no such file (run the cache stage with `cache.views` first).
      ValueError: not `[num_clips, V, 2]`.
    """
    p = str(path).replace("{split}", split)
    if not os.path.isfile(p):
        raise DatasetNotFoundError(
            f"data.views: no file {p} (run the cache stage with cache.views first)")
    views = np.load(p)
    if views.ndim != 3 or views.shape[0] != num_clips or views.shape[2] != len(VIEW_PARAMS):
        raise ValueError(f"data.views: {p} has shape {views.shape}, expected [{num_clips} "
                         f"clips, V, {len(VIEW_PARAMS)}] for split {split!r}")
    return views


class JoinedSource:
    """A source whose elements also carry `arrays[key][element["index"]]` under `key`.

    With `views` (`[len(source), V, 2]`, `load_views`) every joined array is keyed by clip and
    view (`[len(source), V, ...]`); an element then carries all V rows of each array and its
    clip's view parameters under `views`, and the train pipeline
    (kdjax.data.pipeline, `crop="views"`) draws one view per epoch, applies it to the audio and
    keeps that view's rows (`view_keys`).

    Args:
      source: a random-access source whose elements have an `index` (their position).
      arrays: `{key: [len(source), ...]}` (`[len(source), V, ...]` with views).
      views: optional view parameters.

    Raises:
      ValueError: with views, an array without the V axis (names the key and shapes).
    """

    def __init__(self, source, arrays: Mapping[str, np.ndarray], views: np.ndarray | None = None):
        self.source = source
        self.arrays = dict(arrays)
        self.views = views
        self.view_keys = tuple(sorted(self.arrays)) if views is not None else ()
        for k in self.view_keys:
            if self.arrays[k].ndim < 2 or self.arrays[k].shape[1] != views.shape[1]:
                raise ValueError(f"data.join.{k}: shape {self.arrays[k].shape}, expected [clips, "
                                 f"V={views.shape[1]}, ...] (a cache stage run with cache.views)")
        for k in ("sample_rate", "num_classes", "class_names", "multi_label", "name"):
            if hasattr(source, k):
                setattr(self, k, getattr(source, k))

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> dict[str, Any]:
        ex = dict(self.source[i])
        idx = int(ex["index"])
        for k, a in self.arrays.items():
            ex[k] = np.asarray(a[idx], np.float32)
        if self.views is not None:
            ex["views"] = self.views[idx]
        return ex

    def __repr__(self) -> str:
        return f"JoinedSource({self.source!r}, {sorted(self.arrays)})"
