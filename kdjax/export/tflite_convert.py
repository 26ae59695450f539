"""Converts a batch-1 `jax.export` file to TFLite (built-in ops only). Needs tensorflow + jax only.

    <python with tensorflow and jax> kdjax/export/tflite_convert.py IN.stablehlo OUT.tflite

Run as a script (by `kdjax.export.formats.export_tflite`), so it imports nothing from kdjax:
TensorFlow (~1.3 GB) lives in its own venv. The exported function `audio [1, N] -> (logits,
probabilities)` is wrapped by jax2tf (native serialization: the StableHLO travels in an
XlaCallModule op) in a `tf.function` with signature `audio`, and the TFLite converter lowers
it to built-in ops (no Flex/SELECT_TF_OPS, so ai-edge-litert runs it alone). The signature's
outputs are named "logits" and "probabilities".
Source: JAX's jax2tf README ("Converting to TensorFlow Lite"); TensorFlow Lite converter docs.
"""

from __future__ import annotations

import sys


def main(src: str, dst: str) -> None:
    import jax
    import tensorflow as tf
    from jax.experimental import jax2tf

    with open(src, "rb") as f:
        exp = jax.export.deserialize(bytearray(f.read()))
    (spec,) = exp.in_avals
    if any(not isinstance(d, int) for d in spec.shape):
        raise ValueError(f"{src}: expected a static input shape, got {spec.shape}")
    converted = jax2tf.convert(exp.call, with_gradient=False)

    module = tf.Module()

    @tf.function(
        input_signature=[tf.TensorSpec(spec.shape, tf.float32, name="audio")], autograph=False
    )
    def serve(audio):
        logits, probs = converted(audio)
        return {"logits": logits, "probabilities": probs}

    module.serve = serve
    conv = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], module)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    with open(dst, "wb") as f:
        f.write(conv.convert())


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: tflite_convert.py IN.stablehlo OUT.tflite")
    main(sys.argv[1], sys.argv[2])
