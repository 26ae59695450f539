"""Export a trained student to ONNX, TFLite and StableHLO, front-end inside, parity-checked.

    python -m kdjax.export --workdir RUN --config configs/<recipe>.py --format onnx,tflite,stablehlo --out DIR

Modules:
  kdjax.export.model           load_run (a run's deployed model, config, data), serving_fn (the
                               exported function: raw audio [B, N] -> logits, probabilities),
                               reference_fn (the model as trained: the parity reference)
  kdjax.export.formats         export_/run_ stablehlo, onnx, tflite
  kdjax.export.parity          the parity check on test clips and near-silence
  kdjax.export.exporter        export_run: every format, parity, model_card.json
  kdjax.export.tflite_convert  the TFLite conversion script (run in a Python with TensorFlow)
See docs/export.md.
"""

from kdjax.export.exporter import export_run
from kdjax.export.model import Run, load_run, reference_fn, serving_fn
from kdjax.export.parity import ParityError

__all__ = ["ParityError", "Run", "export_run", "load_run", "reference_fn", "serving_fn"]
