"""`export_run`: write a run's deployed model in each format, check parity, write `model_card.json`."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

import kdjax
from kdjax.export import formats, parity
from kdjax.export.model import Run, export_frontend_config, reference_fn, serving_fn


def _onnx_dynamic_loads(path: str, clip_samples: int) -> bool:
    """Whether a dynamic-batch ONNX file loads and runs a batch of 2 in onnxruntime."""
    if not os.path.exists(path):
        return False
    try:
        y = formats.run_onnx(path)(np.zeros((2, clip_samples), np.float32))
        return y[0].shape[0] == 2
    except Exception:  # noqa: BLE001 -- onnxruntime raises its own exception types on load
        return False


def _training_logits_diff(run: Run, ref_logits: np.ndarray) -> float | None:
    """Max |reference - the run's own saved test logits| (`logits_test.npz`), or None without it.

    Checks that the config and checkpoint rebuild the model the run evaluated.
    """
    path = os.path.join(run.workdir, "logits_test.npz")
    if not os.path.exists(path):
        return None
    with np.load(path) as z:
        if run.name not in z or z[run.name].shape != ref_logits.shape:
            return None
        return float(np.abs(z[run.name] - ref_logits).max())


def export_run(
    run: Run,
    out: str,
    formats_: Sequence[str] = ("onnx", "stablehlo"),
    *,
    stft_impl: str = "dft",
    tf_python: str | None = None,
    tolerance: float = parity.DEFAULT_TOLERANCE,
    max_clips: int | None = None,
    config_spec: str | None = None,
) -> dict[str, Any]:
    """Exports `run`'s deployed model to `out/model.<ext>` per format and checks parity.

    Parity: every file is run on the run's test clips (all, or the first `max_clips`) and on
    near-silent probes, and compared with the JAX model as trained (`parity.compare`). Only when
    every format passes is `out/model_card.json` written.

    Args:
      run: from `kdjax.export.model.load_run`.
      out: output folder (created).
      formats_: any of "onnx", "tflite", "stablehlo".
      stft_impl: the exported front-end's STFT ("dft" default, "dft16", "rfft"; see `serving_fn`).
      tf_python: a Python with tensorflow and jax (needed for "tflite").
      tolerance: max absolute logit difference.
      max_clips: test clips checked (default all).
      config_spec: the config as given on the command line (recorded in the card).

    Returns:
      The model card (a dict).

    Raises:
      ValueError: unknown format; "tflite" without `tf_python`.
      parity.ParityError: a file differs from the JAX model (one line naming the format).
      RuntimeError: a converter failed.
    """
    unknown = [f for f in formats_ if f not in formats.FORMATS]
    if unknown or not formats_:
        raise ValueError(
            f"--format: unknown {unknown}; expected a comma-separated subset of {formats.FORMATS}"
        )
    if "tflite" in formats_ and not tf_python:
        raise ValueError(
            "--format tflite needs --tf-python (a Python with tensorflow and jax; docs/export.md)"
        )
    os.makedirs(out, exist_ok=True)
    fn = serving_fn(run, stft_impl=stft_impl)
    n = run.clip_samples

    audio, labels = parity.split_clips(run, "test", max_clips)
    probes = parity.near_silence(n)
    ref = reference_fn(run)
    ref_logits = parity.batched(ref, np.concatenate([audio, probes]))
    jax_acc = float(np.mean(ref_logits[: len(audio)].argmax(-1) == labels))

    files: dict[str, Any] = {}
    checks: dict[str, Any] = {}
    for fmt in formats_:
        path = os.path.join(out, formats.FILE_NAMES[fmt])
        t0 = time.time()
        batch: str | int = 1
        if fmt == "stablehlo":
            formats.export_stablehlo(fn, path, n, dynamic_batch=True)
            batch = "dynamic"
        elif fmt == "onnx":
            # A dynamic batch where jax2onnx converts it and onnxruntime loads it, else batch 1
            # (jax2onnx's BatchNorm has no vmap rule, so a symbolic batch needs a front-end that
            # batches it directly; onnxruntime does not load the ONNX DFT op with a dynamic batch).
            try:
                formats.export_onnx(fn, path, n, dynamic_batch=True)
                batch = "dynamic"
            except Exception:  # noqa: BLE001 -- jax2onnx raises many types; batch 1 is the fallback
                batch = 1
            if batch == 1 or not _onnx_dynamic_loads(path, n):
                formats.export_onnx(fn, path, n, dynamic_batch=False)
                batch = 1
        else:
            formats.export_tflite(fn, path, n, tf_python=tf_python)
        convert_s = time.time() - t0
        runner = formats.RUNNERS[fmt](path)
        logits, probs = parity.batched(runner, np.concatenate([audio, probes]))
        checks[fmt] = parity.compare(fmt, logits, probs, ref_logits, tolerance)
        checks[fmt]["test_accuracy"] = float(np.mean(logits[: len(audio)].argmax(-1) == labels))
        files[fmt] = {
            "file": os.path.basename(path),
            "bytes": os.path.getsize(path),
            "batch": batch,
            "convert_s": round(convert_s, 2),
        }

    result_path = os.path.join(run.workdir, "result.json")
    run_acc = None
    if os.path.exists(result_path):
        with open(result_path) as f:
            run_acc = json.load(f)["models"].get(run.name, {}).get("test", {}).get("accuracy")
    fe = export_frontend_config(run, stft_impl)
    card = {
        "model": run.name,
        "architecture": run.model,
        "num_params": run.num_params,
        "classes": list(run.class_names),
        "sample_rate": run.sample_rate,
        "clip_samples": n,
        "clip_seconds": n / run.sample_rate,
        "input": {
            "name": "audio",
            "shape": ["batch", n],
            "dtype": "float32",
            "units": f"waveform samples in [-1, 1] at {run.sample_rate} Hz",
        },
        "outputs": [
            {"name": "logits", "shape": ["batch", len(run.class_names)]},
            {
                "name": "probabilities",
                "shape": ["batch", len(run.class_names)],
                "definition": "softmax(logits)",
            },
        ],
        "frontend": {k: (list(v) if isinstance(v, tuple) else v) for k, v in fe.items()},
        "stft_impl": stft_impl,
        "files": files,
        "source": {"workdir": run.workdir, "stage": run.stage, "config": config_spec},
        "kdjax_version": kdjax.__version__,
        "jax_version": jax.__version__,
        "parity": {
            "tolerance": tolerance,
            "test_clips": int(len(audio)),
            "silence_clips": int(len(probes)),
            "jax_test_accuracy": jax_acc,
            "run_test_accuracy": run_acc,
            "max_abs_diff_to_run_test_logits": _training_logits_diff(run, ref_logits[: len(audio)]),
            "formats": checks,
        },
    }
    with open(os.path.join(out, "model_card.json"), "w") as f:
        json.dump(card, f, indent=1)
    return card
