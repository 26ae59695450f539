"""Bring your own embeddings: per-clip `.npy` files `[T, D]`, as an extractor for the `cache` stage.

For embedding models whose weights are downloaded at run time (VGGish, OpenL3, PaSST, PANNs:
the EAsT paper's teachers), compute the embedding sequence of every clip with that model's
own tools, save it as `<dir>/<clip stem>.npy` (`[T, D]` float, one row per embedding frame,
e.g. ~0.96 s frames for VGGish/OpenL3; a `[D]` file is read as `T = 1`), and name this module
in the cache stage:

    cache = dict(extractor="kdjax.embeddings.byo:extract_batch",
                 extractor_kw=dict(dir="/path/to/embeddings", num_frames=0),
                 outputs={"embedding": "extractor.embedding"})

`<clip stem>` is the clip's audio file name without its folder and extension
(`1-100032-A-0.flac` -> `1-100032-A-0.npy`). The cache stage passes the batch's file paths
(`paths`, from the split source's records) because this extractor reads files, not audio.

Clip length: the cache stage (and the train stage that joins its arrays) use the first
`data.clip_seconds` of each clip. Your files should describe the same audio: for corpora of
fixed-length clips (ESC-10: 5 s) embed the whole file; otherwise set `num_frames` to the
number of embedding frames that cover `clip_seconds` from the start (rows past it are cut;
shorter files are padded by repeating their last frame, never with zeros, which would add
fake structure to the relational losses).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np


def clip_stem(path: str) -> str:
    """`"/a/b/1-100032-A-0.flac"` -> `"1-100032-A-0"`."""
    return os.path.splitext(os.path.basename(str(path)))[0]


def load(dir: str, path: str, *, suffix: str = ".npy") -> np.ndarray:
    """The embedding file of one clip as float32 `[T, D]`.

    Raises:
      FileNotFoundError: `<dir>/<clip stem><suffix>` does not exist (names it and the clip).
      ValueError: the array is not `[T, D]` (or `[D]`), or is empty.
    """
    f = os.path.join(str(dir), clip_stem(path) + suffix)
    if not os.path.isfile(f):
        raise FileNotFoundError(f"byo embeddings: no file {f} for clip {path} (expected <dir>/<clip stem>{suffix}, "
                                f"an array [T, D])")
    a = np.load(f)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"byo embeddings: {f} has shape {a.shape}, expected [T, D] with T, D >= 1")
    return a.astype(np.float32)


def fit_frames(a: np.ndarray, num_frames: int) -> np.ndarray:
    """`[T, D]` -> `[num_frames, D]`: the first rows, or the last row repeated to fill."""
    if a.shape[0] >= num_frames:
        return a[:num_frames]
    return np.concatenate([a, np.repeat(a[-1:], num_frames - a.shape[0], axis=0)])


def extract_batch(audio: np.ndarray, sample_rate: int, *, paths: Sequence[str], dir: str, num_frames: int = 0,
                  suffix: str = ".npy", **unused: Any) -> dict[str, np.ndarray]:
    """The cache-stage extractor: the batch's clip files -> `{"embedding": [B, T, D]}`.

    Args:
      audio: `[B, N]` (only its batch size is used: the embeddings come from files).
      sample_rate: unused (Hz; the files were computed by their own pipeline).
      paths: `[B]` audio file paths of the batch's clips (passed by the cache stage).
      dir: folder of the `.npy` files.
      num_frames: `T` of every output row (0: every file must already have the same T).
      suffix: file suffix (default `.npy`).

    Raises:
      FileNotFoundError: a clip's file is missing (names the file and the clip).
      ValueError: `len(paths) != B`; files of different `D`; with `num_frames=0`, files of
        different `T` (names two of them and suggests `num_frames`).
    """
    del sample_rate, unused
    b = np.shape(audio)[0]
    if len(paths) != b:
        raise ValueError(f"byo embeddings: {len(paths)} paths for a batch of {b} clips")
    arrs = [load(dir, p, suffix=suffix) for p in paths]
    if num_frames:
        arrs = [fit_frames(a, int(num_frames)) for a in arrs]
    shapes = {a.shape for a in arrs}
    if len({s[1] for s in shapes}) > 1:
        raise ValueError(f"byo embeddings in {dir}: files of different widths D {sorted(s[1] for s in shapes)}")
    if len(shapes) > 1:
        k = next(k for k, a in enumerate(arrs) if a.shape != arrs[0].shape)
        raise ValueError(f"byo embeddings: {clip_stem(paths[k])}{suffix} has shape {arrs[k].shape} but "
                         f"{clip_stem(paths[0])}{suffix} has {arrs[0].shape}; set extractor_kw.num_frames to fix T")
    return {"embedding": np.stack(arrs)}
