"""Writing and running the exported files: StableHLO (`jax.export`), ONNX (jax2onnx), TFLite (jax2tf).

Every file takes raw audio `audio [B, N]` float32 and returns `logits [B, C]` and
`probabilities [B, C]` (softmax), in that order.

  stablehlo  `jax.export.serialize` of the function with a symbolic batch ("b"): load with
             `jax.export.deserialize(bytearray(open(path, "rb").read())).call(audio)` in any
             process with jax (no flax, no kdjax). Source: JAX docs, "Exporting and serializing
             staged-out computations".
  onnx       jax2onnx (opset 23) to an ONNX model, checked with `onnx.checker(full_check=True)`
             after its stale shape annotations are dropped and shape inference re-run; batch 1,
             or a dynamic batch "B" where the front-end allows it (a DFT-matmul STFT; the ONNX
             DFT op with a dynamic batch does not load in onnxruntime).
  tflite     batch 1. jax2tf (native serialization) + `tf.lite.TFLiteConverter` with TFLite
             built-in ops only, run by `tflite_convert.py` in a Python that has TensorFlow
             (e.g. a separate venv: TensorFlow is needed to convert, never to run; running
             needs only `ai-edge-litert`). The converter reads the batch-1 StableHLO export,
             so that Python needs jax but not flax or kdjax.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

FORMATS = ("onnx", "tflite", "stablehlo")
FILE_NAMES = {"onnx": "model.onnx", "tflite": "model.tflite", "stablehlo": "model.stablehlo"}
OUTPUT_NAMES = ("logits", "probabilities")


def export_stablehlo(
    fn: Callable, path: str, clip_samples: int, *, dynamic_batch: bool = True
) -> bytes:
    """Writes `jax.export.serialize(jax.export.export(jax.jit(fn))(audio))` to `path`.

    Args:
      fn: `audio [B, N] -> (logits, probabilities)` (e.g. `kdjax.export.model.serving_fn`).
      path: output file. clip_samples: N.
      dynamic_batch: a symbolic batch dimension "b" (else batch 1).

    Returns:
      The serialized bytes.
    """
    shape = jax.export.symbolic_shape(f"b, {clip_samples}") if dynamic_batch else (1, clip_samples)
    exp = jax.export.export(jax.jit(fn))(jax.ShapeDtypeStruct(shape, np.float32))
    data = bytes(exp.serialize())
    with open(path, "wb") as f:
        f.write(data)
    return data


def run_stablehlo(path: str) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A runner of a `model.stablehlo` file: `audio [B, N] -> (logits, probabilities)` as NumPy."""
    with open(path, "rb") as f:
        exp = jax.export.deserialize(bytearray(f.read()))
    call = jax.jit(exp.call)
    return lambda audio: tuple(np.asarray(y) for y in call(np.asarray(audio, np.float32)))


def _clean_onnx(model: Any) -> Any:
    """Names the graph's input/outputs, drops jax2onnx's value_info and re-infers shapes.

    With `conv_impl="xla"` jax2onnx 0.17 writes stale intermediate shape annotations that
    `onnx.checker(full_check=True)` rejects; dropping them and re-running shape inference gives
    a model that passes.
    """
    import onnx

    g = model.graph
    renames = {g.input[0].name: "audio"} | {
        o.name: n for o, n in zip(g.output, OUTPUT_NAMES, strict=True)
    }
    for node in g.node:
        node.input[:] = [renames.get(x, x) for x in node.input]
        node.output[:] = [renames.get(x, x) for x in node.output]
    for v in (*g.input, *g.output):
        v.name = renames.get(v.name, v.name)
    del g.value_info[:]
    used = {x for node in g.node for x in node.input} | {o.name for o in g.output}
    keep = [t for t in g.initializer if t.name in used]  # jax2onnx leaves a few unused constants
    del g.initializer[:]
    g.initializer.extend(keep)
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    onnx.checker.check_model(model, full_check=True)
    return model


def export_onnx(
    fn: Callable, path: str, clip_samples: int, *, dynamic_batch: bool = False, opset: int = 23
) -> None:
    """Converts `fn` with jax2onnx and writes a checked ONNX model (input "audio", outputs
    "logits", "probabilities").

    Args:
      fn: `audio [B, N] -> (logits, probabilities)`.
      path: output file. clip_samples: N.
      dynamic_batch: input `["B", N]` (only with a front-end without the ONNX DFT op).
      opset: ONNX opset.

    Raises:
      ImportError: jax2onnx / onnx missing (install requirements-export*.txt).
      onnx.checker.ValidationError: an invalid model.
    """
    import logging

    import onnx

    # jax2onnx imports its optional plugins (equinox, dm-pix examples) and logs a traceback for
    # each one that is not installed; they are not needed for Flax linen models.
    logging.getLogger("jax2onnx.plugins.plugin_system").setLevel(logging.ERROR)
    # With a symbolic batch onnx_ir warns that a shape-computation value has no declared type;
    # the model is re-inferred and fully checked below.
    logging.getLogger("onnx_ir.serde").setLevel(logging.ERROR)
    from jax2onnx import to_onnx

    shape = ("B", clip_samples) if dynamic_batch else (1, clip_samples)
    model = to_onnx(fn, [shape], model_name="kdjax_student", opset=opset)
    onnx.save(_clean_onnx(model), path)


def run_onnx(path: str, threads: int = 1) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """An onnxruntime (CPU, `threads` intra-op threads) runner: `audio [B, N] -> (logits, probabilities)`.

    A batch-1 model is run row by row.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    fixed = sess.get_inputs()[0].shape[0] == 1

    def run(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        audio = np.asarray(audio, np.float32)
        if fixed and audio.shape[0] != 1:
            outs = [run(a[None]) for a in audio]
            return tuple(np.concatenate([o[k] for o in outs]) for k in range(2))
        return tuple(sess.run(list(OUTPUT_NAMES), {"audio": audio}))

    return run


def export_tflite(fn: Callable, path: str, clip_samples: int, *, tf_python: str) -> None:
    """Converts `fn` to a batch-1 TFLite model (built-in ops only) with TensorFlow's converter.

    The batch-1 StableHLO export of `fn` is written to a temporary file and converted by
    `tflite_convert.py` run with `tf_python` (a Python with tensorflow and jax installed).

    Raises:
      RuntimeError: the converter failed (its last output line).
      FileNotFoundError: `tf_python` does not exist.
    """
    if not os.path.exists(tf_python):
        raise FileNotFoundError(
            f"--tf-python {tf_python}: no such interpreter (a venv with "
            "tensorflow and jax, see docs/export.md)"
        )
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tflite_convert.py")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "batch1.stablehlo")
        export_stablehlo(fn, src, clip_samples, dynamic_batch=False)
        env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
        env.pop("PYTHONPATH", None)
        p = subprocess.run([tf_python, script, src, path], capture_output=True, text=True, env=env)
    if p.returncode != 0 or not os.path.exists(path):
        lines = [x for x in (p.stderr + p.stdout).splitlines() if x.strip()]
        raise RuntimeError(
            f"TFLite conversion failed ({tf_python}): {lines[-1] if lines else p.returncode}"
        )


def run_tflite(
    path: str, threads: int = 1
) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """An ai-edge-litert interpreter (`threads` threads): `audio [B, N] -> (logits, probabilities)`,
    row by row (the model has batch 1). Outputs are matched by name (logits, probabilities)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=path, num_threads=threads)
    it.allocate_tensors()
    runner = it.get_signature_runner()
    outputs = it.get_signature_list()["serving_default"]["outputs"]
    if sorted(outputs) != sorted(OUTPUT_NAMES):
        raise ValueError(f"{path}: expected outputs {OUTPUT_NAMES}, the signature has {outputs}")

    def one(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = runner(audio=a[None])
        return tuple(np.asarray(out[n]) for n in OUTPUT_NAMES)

    def run(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outs = [one(a) for a in np.asarray(audio, np.float32)]
        return tuple(np.concatenate([o[k] for o in outs]) for k in range(2))

    return run


RUNNERS = {"onnx": run_onnx, "tflite": run_tflite, "stablehlo": run_stablehlo}


def python_has(module: str, python: str = sys.executable) -> bool:
    """Whether `python` can import `module`."""
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0
