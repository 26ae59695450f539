"""Parity of exported files with the trained JAX model, on real test clips and near-silence.

The reference is the model exactly as training evaluated it (`kdjax.export.model.reference_fn`:
the run's own front-end and convolution formulation). An exported file passes when, on every
clip, its logits are within `tolerance` (absolute, default 1e-4) of the reference's and its
top-1 class is the reference's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from kdjax.data import pipeline
from kdjax.export.model import Run

DEFAULT_TOLERANCE = 1e-4


class ParityError(RuntimeError):
    """An exported file's logits or top-1 classes differ from the JAX model's."""


def split_clips(
    run: Run, split: str = "test", max_clips: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The run's `split` clips as the model sees them: (audio `[M, N]` float32, labels `[M]` int).

    Clips are fitted to N = `run.clip_samples` as in evaluation (`pipeline.eval_batches`, the
    start of each clip, zero-padded).

    Raises:
      ValueError: the run has no such split.
    """
    src = run.sources.get(split)
    if src is None:
        raise ValueError(f"{run.workdir}: the run has no {split} split")
    n = len(src) if max_clips is None else min(len(src), int(max_clips))
    audio, labels = [], []
    for b in pipeline.eval_batches(src, clip_samples=run.clip_samples, batch_size=32):
        keep = b["mask"] > 0
        audio.append(b["audio"][keep])
        labels.append(np.argmax(b["labels"][keep], -1))
    return np.concatenate(audio)[:n].astype(np.float32), np.concatenate(labels)[:n]


def near_silence(clip_samples: int, seed: int = 0) -> np.ndarray:
    """Near-silent probe clips `[3, N]`: digital zeros, white noise at 1e-5 and 1e-3 RMS (-100 and
    -60 dBFS): the front-end's dB floor and top_db clipping act there."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((2, clip_samples)).astype(np.float32)
    return np.concatenate(
        [np.zeros((1, clip_samples), np.float32), noise[:1] * 1e-5, noise[1:] * 1e-3]
    ).astype(np.float32)


def batched(fn: Callable[[np.ndarray], Any], x: np.ndarray, batch: int = 32) -> Any:
    """`fn` over `x [M, ...]` in batches of `batch` rows (the last one zero-padded), concatenated.

    `fn` returns an array or a tuple of arrays (each `[batch, ...]`); so does `batched`.
    """
    outs = []
    for i in range(0, len(x), batch):
        part = x[i : i + batch]
        pad = batch - len(part)
        if pad:
            part = np.concatenate([part, np.zeros((pad, *part.shape[1:]), part.dtype)])
        y = fn(part)
        ys = y if isinstance(y, tuple) else (y,)
        outs.append(tuple(np.asarray(a)[: batch - pad] for a in ys))
    cat = tuple(np.concatenate(parts) for parts in zip(*outs, strict=True))
    return cat if isinstance(y, tuple) else cat[0]


def compare(
    fmt: str,
    logits: np.ndarray,
    probs: np.ndarray,
    ref_logits: np.ndarray,
    tolerance: float = DEFAULT_TOLERANCE,
) -> dict[str, Any]:
    """Parity figures of one format's outputs against the reference logits.

    Args:
      fmt: the format's name (for the error). logits, probs: the file's outputs `[M, C]`.
      ref_logits: the JAX model's logits `[M, C]`. tolerance: max absolute logit difference.

    Returns:
      `{"max_abs_logit_diff", "max_abs_prob_diff", "top1_mismatches", "clips"}`.

    Raises:
      ParityError: a logit differs by more than `tolerance`, or a top-1 class differs (one line
        naming the format, the difference and the clip).
    """
    ref_logits = np.asarray(ref_logits, np.float64)
    logits, probs = np.asarray(logits, np.float64), np.asarray(probs, np.float64)
    if logits.shape != ref_logits.shape or probs.shape != ref_logits.shape:
        raise ParityError(
            f"{fmt}: outputs {logits.shape} / {probs.shape}, expected {ref_logits.shape}"
        )
    z = ref_logits - ref_logits.max(-1, keepdims=True)
    ref_probs = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    diff = np.abs(logits - ref_logits).max(-1)
    mism = np.flatnonzero(logits.argmax(-1) != ref_logits.argmax(-1))
    out = {
        "max_abs_logit_diff": float(diff.max()),
        "max_abs_prob_diff": float(np.abs(probs - ref_probs).max()),
        "top1_mismatches": int(mism.size),
        "clips": int(len(ref_logits)),
    }
    if not np.all(np.isfinite(logits)) or diff.max() > tolerance:
        k = int(np.nanargmax(np.where(np.isfinite(diff), diff, np.inf)))
        raise ParityError(
            f"{fmt}: max |logit difference| {diff[k]:.3g} > {tolerance:g} (clip {k} of {len(diff)})"
        )
    if mism.size:
        raise ParityError(
            f"{fmt}: top-1 class differs on {mism.size} of {len(diff)} clips (first: clip {mism[0]})"
        )
    return out
