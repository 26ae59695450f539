"""Evaluate the deployed models of a Program on a whole split: metric, loss, confusion matrix,
per-class accuracy, and the logits for ensembles and paired per-clip comparisons.

Used by the train loop (kdjax.train.loop) for validation during training and for the final
validation/test evaluation of the selected models. Metrics are kdjax.train.metrics functions.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding

from kdjax.data import pipeline
from kdjax.train import metrics as metrics_lib
from kdjax.train.program import Program


def evaluate(
    program: Program,
    eval_fn: Callable[[Mapping[str, Any], Mapping[str, Any], Mapping[str, jax.Array]], Mapping[str, jax.Array]],
    params: Mapping[str, Any],
    batch_stats: Mapping[str, Any],
    source,
    *,
    clip_samples: int,
    batch_size: int,
    data_sharding: NamedSharding,
    metric: str = "accuracy",
    logits_out: dict[str, np.ndarray] | None = None,
) -> dict[str, dict[str, Any]]:
    """Metrics of every deployed model on a whole split: `{name: {metric, loss, ...}}`.

    Multi-label data: the metric is computed on `sigmoid(logits)` (probabilities). For
    single-label data also the confusion matrix and per-class accuracy. If `logits_out` is
    a dict, it receives each model's logits `[N, C]` (in source order, padding removed) and
    `"labels"` `[N, C]`.

    Args:
      program: the Program (its `deployed` models are evaluated).
      eval_fn: `(params, batch_stats, inputs) -> {model: logits [B, C]}` (e.g. a jitted
        kdjax.train.step.eval_logits).
      source: the split's source (kdjax.data); read in order, the last batch padded (masked).
      clip_samples: N, each clip cropped/padded from its start to N samples.
      batch_size: the global batch (split evenly over processes).
      data_sharding: the batch's sharding on the ("data",) mesh.
      metric: a kdjax.train.metrics function name.

    Raises:
      ValueError: `metric` is not a kdjax.train.metrics function.
    """
    nproc, pidx = jax.process_count(), jax.process_index()
    logits: dict[str, list] = {n: [] for n in program.deployed}
    labels, masks, label_masks = [], [], []
    for batch in pipeline.eval_batches(
        source, clip_samples=clip_samples, batch_size=batch_size // nproc,
        shard_index=pidx, shard_count=nproc,
    ):
        inputs = {k: jax.make_array_from_process_local_data(data_sharding, v) for k, v in batch.items()
                  if k not in ("labels", "label_mask", "mask", "index")}
        out = eval_fn(params, batch_stats, inputs)
        out = multihost_utils.process_allgather(out, tiled=True) if nproc > 1 else out
        for n in program.deployed:
            logits[n].append(np.asarray(out[n]))
        lab, msk, lmsk = batch["labels"], batch["mask"], batch["label_mask"]
        if nproc > 1:
            lab, msk, lmsk = (np.asarray(multihost_utils.process_allgather(a, tiled=True))
                              for a in (lab, msk, lmsk))
        labels.append(lab)
        masks.append(msk)
        label_masks.append(lmsk)
    y, m, lm = np.concatenate(labels), np.concatenate(masks), np.concatenate(label_masks)
    metric_fn = getattr(metrics_lib, metric, None)
    if metric_fn is None:
        raise ValueError(f"eval_metric={metric!r}: no such function in kdjax.train.metrics")
    metric_kw = {"mask": m}
    if "label_mask" in inspect.signature(metric_fn).parameters:
        metric_kw["label_mask"] = lm
    result = {}
    for n in program.deployed:
        z = np.concatenate(logits[n]).astype(np.float64)
        r: dict[str, Any] = {}
        # Multi-label metrics take probabilities (DCASE micro-AUPRC thresholds scores in [0, 1]);
        # rank-based metrics (mAP, ROC-AUC) are unchanged by the sigmoid. Logits are saved as is.
        scores = 1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0))) if source.multi_label else z
        r[metric] = float(metric_fn(scores, y, **metric_kw))
        if not source.multi_label:
            zmax = z.max(-1, keepdims=True)
            logp = z - zmax - np.log(np.exp(z - zmax).sum(-1, keepdims=True))
            r["loss"] = float(-(y * logp).sum(-1)[m > 0].mean())
            cm = metrics_lib.confusion_matrix(z, y, m)
            r["confusion_matrix"] = cm.tolist()
            r["per_class_accuracy"] = [None if math.isnan(a) else float(a) for a in metrics_lib.per_class_accuracy(cm)]
            if metric != "accuracy":
                r["accuracy"] = metrics_lib.accuracy(z, y, m)
        result[n] = r
        if logits_out is not None:
            logits_out[n] = z[m > 0].astype(np.float32)
    if logits_out is not None:
        logits_out["labels"] = y[m > 0].astype(np.float32)
    return result
