"""grain input pipelines: decode -> pad/crop -> shuffle -> batch, sharded per host.

Batches are dicts of NumPy arrays:
  audio       `[B, clip_samples]` float32 waveform
  labels      `[B, C]` float32 class probabilities
  label_mask  `[B, C]` float32
  index       `[B]` int32 source index
  view        `[B]` int32 the fixed view drawn (train crop "views" only, kdjax.data.join)
  <key>       per-clip arrays of the source (`features/<name>` of synthetic shards, joined
              arrays of kdjax.data.join), stacked `[B, ...]`
  mask        `[B]` float32, 1 for real examples, 0 for eval padding
`B` is the per-host batch (global batch / process count).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import grain
import numpy as np

from kdjax.data.audio import fit_length
from kdjax.data.join import view_audio


def _crop(clip_samples: int, mode: str, view_keys: tuple[str, ...] = ()):
    """The per-example crop/pad (`fit_length`), or with mode "views" (a JoinedSource with fixed
    views, kdjax.data.join): one of the clip's V views `v ~ U{0..V-1}` from `rng` (so a resumed
    iterator draws the same), applied to the audio (`view_audio`), its rows of the `view_keys`
    arrays, and `view` = v."""

    def fn(ex: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        ex = dict(ex)
        if mode == "views":
            views = ex.pop("views")
            v = int(rng.integers(views.shape[0]))
            ex["audio"] = view_audio(ex["audio"], clip_samples, views[v])
            ex |= {k: ex[k][v] for k in view_keys}
            ex["view"] = np.int32(v)
        elif "audio" in ex:  # sources of precomputed features (synthetic shards) have none
            ex["audio"] = fit_length(ex["audio"], clip_samples, mode=mode, rng=rng).astype(np.float32)
        ex["mask"] = np.float32(1.0)
        return ex

    return fn


def _shard_batches(source, *, index: int, count: int, clip_samples: int, batch_size: int,
                   seed: int, crop: str) -> grain.MapDataset:
    """Shard `index` of `count` (every count-th example) as an infinite, shuffled, batched MapDataset."""
    ds = grain.MapDataset.source(source)
    if count > 1:
        ds = ds[index::count]
    if len(ds) < batch_size:
        raise ValueError(
            f"train split has {len(ds)} examples in data shard {index}/{count}, fewer than its "
            f"batch of {batch_size}"
        )
    ds = ds.seed(seed).shuffle().repeat(None)
    ds = ds.random_map(_crop(clip_samples, crop, getattr(source, "view_keys", ())))
    return ds.batch(batch_size, drop_remainder=True)


def _concat_batches(parts: tuple[dict[str, np.ndarray], ...]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def train_dataset(
    source,
    *,
    clip_samples: int,
    batch_size: int,
    seed: int,
    crop: str = "random",
    shard_index: int | Sequence[int] = 0,
    shard_count: int = 1,
    read_threads: int = 1,
    prefetch: int = 16,
) -> grain.IterDataset:
    """An infinite, shuffled (fresh order every epoch), batched training stream.

    Args:
      source: a random-access source (e.g. `ClipSource`).
      clip_samples: every clip is padded/cropped to this many samples.
      batch_size: per-host batch size (drop_remainder).
      seed: shuffle and crop seed; the stream is a pure function of it.
      crop: "random" (training augmentation), "start" or "center", or "views": one of the
        source's fixed views per example and epoch (a JoinedSource with views, kdjax.data.join).
      shard_index, shard_count: this host's slice of the source: shard `i` is every
        `shard_count`-th example from `i`, shuffled on its own with `seed`. Usually one
        shard per host (process index/count). A sequence of indices reads several
        shards on this host, `batch_size / len(shard_index)` examples from each, and
        concatenates their batches in that order; so one host reading shards
        `(0, ..., K-1)` sees exactly the global batches of K hosts reading one shard each
        (the global batch of a multi-process run is the concatenation of the hosts'
        batches in process order). See `data.num_shards` in `kdjax.train.loop`.
      read_threads, prefetch: grain ReadOptions; 1 thread is fastest on 2 cores
        (STACK-NOTES: 16 threads slowed the train step 575 -> 954 ms).

    Returns:
      grain IterDataset; its iterator supports `get_state()`/`set_state()` for checkpoints
      (the state, `{"next_index": steps}`, has the same form for any number of shards).

    Raises:
      ValueError: a shard has fewer examples than its batch; batch_size not divisible by
        the number of shards read.
    """
    indices = [shard_index] if isinstance(shard_index, (int, np.integer)) else list(shard_index)
    if not indices or batch_size % len(indices):
        raise ValueError(f"batch_size={batch_size} must be divisible by the {len(indices)} data shards read")
    if any(not 0 <= i < shard_count for i in indices):
        raise ValueError(f"shard indices {indices} out of range for shard_count={shard_count}")
    parts = [
        _shard_batches(source, index=int(i), count=shard_count, clip_samples=clip_samples,
                       batch_size=batch_size // len(indices), seed=seed, crop=crop)
        for i in indices
    ]
    ds = parts[0] if len(parts) == 1 else grain.experimental.ZipMapDataset(parents=parts).map(_concat_batches)
    return ds.to_iter_dataset(
        grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=prefetch)
    )


def eval_batches(
    source,
    *,
    clip_samples: int,
    batch_size: int,
    crop: str = "start",
    shard_index: int = 0,
    shard_count: int = 1,
) -> Iterator[dict[str, np.ndarray]]:
    """Every example of `source` exactly once, in order, in fixed-size batches.

    The last batch is padded with copies of its first example and `mask = 0`, so
    every batch has the same shape (one compilation) and padded rows are
    excluded from metrics. Each host yields the same number of batches.
    """
    n = len(source)
    idx = np.arange(shard_index, n, shard_count)
    per_host = -(-n // shard_count)
    num_batches = -(-per_host // batch_size)
    crop_fn = _crop(clip_samples, crop)
    rng = np.random.default_rng(0)
    for b in range(num_batches):
        chunk = idx[b * batch_size : (b + 1) * batch_size]
        exs = [crop_fn(source[int(i)], rng) for i in chunk]
        real = len(exs)
        if real == 0:
            exs = [crop_fn(source[0], rng)]
        while len(exs) < batch_size:
            exs.append(dict(exs[0]))
        batch = {k: np.stack([e[k] for e in exs]) for k in exs[0]}
        batch["mask"] = np.zeros(batch_size, np.float32)
        batch["mask"][:real] = 1.0
        yield batch
