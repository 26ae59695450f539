"""The `cache` stage: run frozen models or an external extractor once over a dataset and store
the arrays by clip index, for train stages to join (kdjax.data.join).

Config (a stage with `kind="cache"`):
  data       the data block; every split named in `cache.splits` is read in source order,
             each clip cropped/padded from its start to `data.clip_seconds` (the train stage
             that joins the arrays must use `data.train_crop="start"` and no mixup)
  teachers   frozen modules with checkpoints, as in a train config (optional)
  cache      {outputs: {key: namespace path, e.g. "teacher.t.feats.embedding" or
              "extractor.embedding", or a derived output {fn: a `kdjax.losses` function
              (or "package.module:function", a jnp function),
              inputs: [namespace paths of frozen-module outputs], kw: {...}}, computed inside
              the jitted forward, e.g. Temporal KD's target {fn: "rollout_frame_distribution",
              inputs: ["teacher.t.feats.attention"]} stores `[N-1]` per clip instead of the
              `[L, H, N, N]` attention}, extractor: "" or "package.module:function",
              extractor_kw: {...}, splits: ["train", "validation", "test"] (default: the
              data block's splits)}
  cache.views (optional) = {num: V, seed: 0, gain_db: [min, max] (default [0, 0]),
             splits: [the data block's train split]}: offline KD with augmentation. Each clip of
             those splits gets V fixed views drawn once (kdjax.data.join.draw_views: a random
             crop/pad offset as `data.train_crop="random"` draws it, and a random gain), the
             outputs are computed on every view, and the arrays are keyed by clip and view
             (`[num_clips, V, ...]`, row [i, v] = view v of clip i), with the view parameters
             in `arrays/<split>/views.npy` (`[num_clips, V, 2]`: offset in samples, gain in dB).
             A train stage reads them with `data.train_crop="views"` and
             `data.views="{stage:cache}/arrays/{split}/views.npy"`: its pipeline draws one of the
             V views per clip and epoch (kdjax.data.pipeline), so teacher outputs and student
             input stay the same view. Other splits are computed on the clips' starts.
An extractor is a plain Python function `fn(audio [B, N] float32 NumPy, sample_rate, **kw) ->
{name: [B, ...]}` (e.g. a TFLite or ONNX embedding model run outside JAX, kdjax.embeddings);
its outputs are `extractor.<name>`. An extractor with a `paths` parameter also gets the audio
file path of each row (`[B]` strings, from the split source's records; padded rows repeat the
batch's first clip), for extractors that read per-clip files (kdjax.embeddings.byo).

Writes `<workdir>/arrays/<split>/<key>.npy` (`[num_clips, ...]`, row i = the clip with source
index i, float32) and `result.json` (shapes, extraction throughput in clips/s).
"""

from __future__ import annotations

import importlib
import inspect
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import jax
import ml_collections
import numpy as np

import kdjax.losses
from kdjax.data import join, pipeline
from kdjax.train.forward import forward, resolve
from kdjax.train.setup import StageContext, split_names, write_result


def load_extractor(spec: str) -> Callable[..., dict[str, np.ndarray]]:
    """`"package.module:function"` -> the function.

    Raises:
      ValueError: not of that form, or the module/function does not exist (names it).
    """
    mod_name, _, fn_name = spec.partition(":")
    if not mod_name or not fn_name:
        raise ValueError(f"cache.extractor={spec!r}: expected 'package.module:function'")
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        raise ValueError(f"cache.extractor={spec!r}: cannot import {mod_name!r} ({e})") from None
    fn = getattr(mod, fn_name, None)
    if not callable(fn):
        raise ValueError(f"cache.extractor={spec!r}: {mod_name} has no function {fn_name!r}")
    return fn


def wants_paths(fn: Callable[..., Any]) -> bool:
    """Whether an extractor takes the batch's file paths (a parameter named `paths`)."""
    try:
        return "paths" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False


def clip_paths(src: Any, index: np.ndarray) -> list[str]:
    """The audio file path of each source index (`src.records[i].path`).

    Raises:
      ValueError: the source has no file records (e.g. synthetic shards).
    """
    records = getattr(src, "records", None)
    if records is None:
        raise ValueError(f"cache.extractor takes `paths`, but the source {src!r} has no file records")
    return [str(records[int(i)].path) for i in np.asarray(index)]


def view_batches(src: Any, views: np.ndarray, clip_samples: int,
                 batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Every (clip, view) of `src` once, clip-major, as eval batches (`audio [B, clip_samples]`,
    `index [B]` the clip, `mask [B]`; the last batch padded with mask 0, as
    `pipeline.eval_batches`).

    Args:
      views: `[len(src), V, 2]` view parameters (kdjax.data.join.draw_views).
    """
    rows = [(i, v) for i in range(len(src)) for v in range(views.shape[1])]
    for b in range(0, len(rows), batch_size):
        chunk = rows[b:b + batch_size]
        audio = [join.view_audio(src[i]["audio"], clip_samples, views[i, v]) for i, v in chunk]
        real = len(audio)
        audio += [audio[0]] * (batch_size - real)
        index = [i for i, _ in chunk] + [chunk[0][0]] * (batch_size - real)
        yield {"audio": np.stack(audio), "index": np.asarray(index, np.int32),
               "mask": (np.arange(batch_size) < real).astype(np.float32)}


def cache_arrays(cfg: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Runs the cache stage `cfg` in `workdir`; returns the result dict (also result.json).

    Raises:
      ValueError: no outputs, an output path that the namespace lacks, an extractor output with
        the wrong batch size.
    """
    c = cfg.cache
    outputs = dict(c.get("outputs", {}) or {})
    if not outputs:
        raise ValueError("cache.outputs: expected {key: namespace path}, e.g. {'logits': 'teacher.t.logits'}")
    ctx = StageContext.build(cfg, workdir)
    workdir, program, sr, clip_samples = ctx.workdir, ctx.program, ctx.sample_rate, ctx.clip_samples
    names = split_names(cfg)
    splits = list(c.get("splits") or [s for s in names.values() if s])
    by_split = {split: ctx.sources[role] for role, split in names.items() if split}
    teachers = jax.device_put(dict(ctx.teachers))
    extractor = load_extractor(c.extractor) if c.get("extractor") else None
    extractor_kw = dict(c.get("extractor_kw", {}) or {})
    pass_paths = extractor is not None and wants_paths(extractor)

    derived = {k: v for k, v in outputs.items() if not isinstance(v, str)}
    fns = {}  # fn: a kdjax.losses name, or "package.module:function" (a jnp function)
    for k, spec in derived.items():
        name = str(spec.get("fn", ""))
        fns[k] = load_extractor(name) if ":" in name else getattr(kdjax.losses, name, None)
        if fns[k] is None or not spec.get("inputs"):
            raise ValueError(f"cache.outputs.{k}: expected a namespace path or {{fn: <a kdjax.losses "
                             f"function>, inputs: [...], kw: {{...}}}}, got {dict(spec)}")
        outputs[k] = f"derived.{k}"

    @jax.jit
    def run(teachers, batch):
        ns, _ = forward(program, teachers, batch, jax.random.key(0), train=False)
        if derived:
            ns = dict(ns, derived={
                k: fns[k](*[resolve(ns, p) for p in spec["inputs"]], **dict(spec.get("kw", {}) or {}))
                for k, spec in derived.items()})
        return ns

    def model_outputs(batch: dict[str, np.ndarray]) -> dict[str, Any]:
        if not program.nodes and not derived:
            return {"batch": batch}
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "label_mask", "index")}
        return jax.device_get(run(teachers, inputs))

    views_cfg = dict(c.get("views", {}) or {})
    view_splits = set(views_cfg.get("splits") or [names["train"]]) if views_cfg else set()

    result: dict[str, Any] = {"kind": "cache", "splits": {}}
    t_all, n_all = 0.0, 0
    for split in splits:
        if split not in by_split:
            raise ValueError(f"cache.splits: {split!r} is not one of the data block's splits {list(by_split)}")
        src = by_split[split]
        rows: dict[str, list[np.ndarray]] = {k: [] for k in outputs}
        t0 = time.time()
        bs = int(cfg.get("eval_batch_size", cfg.get("batch_size", 32)))
        views = None
        if split in view_splits:
            seed, num = int(views_cfg.get("seed", 0)), int(views_cfg.get("num", 1))
            gain_db = tuple(views_cfg.get("gain_db", (0.0, 0.0)))
            views = np.stack([join.draw_views(seed, i, len(src[i]["audio"]), clip_samples, num,
                                              gain_db=gain_db) for i in range(len(src))])
        batches = (view_batches(src, views, clip_samples, bs) if views is not None else
                   pipeline.eval_batches(src, clip_samples=clip_samples, batch_size=bs))
        for batch in batches:
            real = int(batch["mask"].sum())
            ns = model_outputs(batch)
            if extractor is not None:
                kw = dict(extractor_kw, paths=clip_paths(src, batch["index"])) if pass_paths else extractor_kw
                ext = extractor(np.asarray(batch["audio"]), sr, **kw)
                for k, v in ext.items():
                    if np.shape(v)[0] != len(batch["audio"]):
                        raise ValueError(f"cache.extractor output {k!r} has {np.shape(v)[0]} rows for a batch of "
                                         f"{len(batch['audio'])}")
                ns = dict(ns, extractor=ext)
            for k, path in outputs.items():
                rows[k].append(np.asarray(resolve(ns, path), np.float32)[:real])
        dt = time.time() - t0
        out_dir = os.path.join(workdir, "arrays", split)
        os.makedirs(out_dir, exist_ok=True)
        shapes = {}
        if views is not None:
            np.save(os.path.join(out_dir, ".views.tmp.npy"), views)
            os.replace(os.path.join(out_dir, ".views.tmp.npy"), os.path.join(out_dir, "views.npy"))
        for k, parts in rows.items():
            arr = np.concatenate(parts)
            if views is not None:  # rows (clip, view), clip-major
                arr = arr.reshape((len(src), views.shape[1]) + arr.shape[1:])
            tmp = os.path.join(out_dir, f".{k}.tmp.npy")
            np.save(tmp, arr)
            os.replace(tmp, os.path.join(out_dir, f"{k}.npy"))  # complete files only
            shapes[k] = list(arr.shape)
        result["splits"][split] = {"num_clips": len(src), "shapes": shapes, "time_s": dt}
        t_all += dt
        n_all += len(src)
    result["summary"] = {"num_clips": n_all, "time_s": t_all, "clips_per_s": n_all / max(t_all, 1e-9),
                         "outputs": sorted(outputs)}
    write_result(workdir, result)
    return result
