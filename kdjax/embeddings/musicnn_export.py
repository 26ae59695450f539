"""Export musicnn (MTT) embeddings once to per-clip `.npy` files, for `teacher=musicnn` in configs/east.py.

Model: musicnn, Pons & Serra, "musicnn: Pre-trained convolutional neural networks for music
audio tagging", ISMIR 2019 late-breaking demo (github.com/jordipons/musicnn); licence ISC.
The `musicnn` package (PyPI, 0.1.0) ships the TF1 checkpoints; `MTT_musicnn` was trained on
MagnaTagATune (50 tags). Its input is a 96-band mel spectrogram of 16 kHz audio (n_fft 512,
hop 256, `log10(10000 x + 1)`, computed by musicnn's own `batch_data` with librosa) in patches
of `input_length` = 3 s (187 frames); the exported feature is, per patch, one of the model's
layers (default `penultimate`: the 200-d batch-normalised dense layer before the tag layer;
also `mean_pool`/`max_pool` (753-d) over the patch's time axis). A 5 s ESC-10 clip gives one
3 s patch with the default hop (= input_length, musicnn's default of no overlap); e.g.
`--hop-seconds=1` gives 3.

Why a separate export step: musicnn needs TensorFlow (TF1 graph code through
`tf.compat.v1`), which kdjax does not depend on. Run this module ONCE in a separate virtual
environment, then train in the kdjax environment reading the files back through
`kdjax.embeddings.byo` (configs/east.py `teacher=musicnn,byo_dir=<out>`). Verified here with
Python 3.11, tensorflow-cpu 2.21.0, tf_keras 2.21.0 (`TF_USE_LEGACY_KERAS=1`:
`tf.compat.v1.layers` is not available with Keras 3), librosa 0.11.0, numpy 2.4.6, and
`musicnn==0.1.0` installed with `--no-deps` (its metadata pins numpy<1.17, which is not
needed to run it):

    python -m venv /path/venv-tf && . /path/venv-tf/bin/activate
    pip install tensorflow-cpu==2.21.0 tf_keras==2.21.0 librosa==0.11.0 soundfile
    pip install --no-deps musicnn==0.1.0
    TF_USE_LEGACY_KERAS=1 python -m kdjax.embeddings.musicnn_export \
        --audio-dir ../shared/data/esc10/audio --out /tmp/musicnn_mtt --check

(run from the kdjax checkout; this module imports nothing of kdjax, jax or flax). `--check`
also runs musicnn's own `extractor()` on the first file and reports the largest difference
from the exported array (0 with `--spectrogram=original`: the same graph, checkpoint and
spectrogram code; measured 0.0 on an ESC-10 clip).

Known defect of the original pipeline: musicnn's `batch_data` casts the mel power spectrogram
to float16 *before* `log10(10000 x + 1)`, so `10000 x` overflows to inf for mel powers above
~6.55 (a NumPy RuntimeWarning). On ESC-10 (loud, normalised clips) this hits most clips: with
`--layer=mean_pool --hop-seconds=1`, 306 of 400 exported arrays contained inf. Hence
`--spectrogram`: "float32" (default) computes the same librosa mel spectrogram and log in
float32 (finite; otherwise the same numbers up to float16 rounding); "original" calls
musicnn's own `batch_data` (inf included), and is what `--check` compares bit for bit.
It matters: a standardised logistic regression on the 200-d `penultimate` features (one 3 s
patch per clip) scores 91.3% on ESC-10 fold 1 with "float32" and 28.8% with "original"
(train folds 2-5, test fold 1; configs/east.py's probe: 82.5% after its 300 steps).

Output: `<out>/<stem>.npy` float32 `[P, D]` (P patches) per audio file, and `<out>/meta.json`
(model, layer, input_length, hop, versions).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import time

AUDIO_EXT = (".wav", ".flac", ".mp3", ".ogg")
LAYERS = ("penultimate", "mean_pool", "max_pool")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--audio-dir", required=True, help="folder of audio files (searched recursively)")
    ap.add_argument("--out", required=True, help="output folder for <stem>.npy")
    ap.add_argument("--model", default="MTT_musicnn", choices=("MTT_musicnn", "MSD_musicnn"))
    ap.add_argument("--layer", default="penultimate", choices=LAYERS)
    ap.add_argument("--input-length", type=float, default=3.0, help="patch length, seconds (musicnn: 3)")
    ap.add_argument("--hop-seconds", type=float, default=0.0, help="patch hop, seconds (0: = input length)")
    ap.add_argument("--spectrogram", default="float32", choices=("float32", "original"),
                    help="float32: no float16 overflow (default); original: musicnn's batch_data as is")
    ap.add_argument("--check", action="store_true", help="compare the first file with musicnn.extractor()")
    ap.add_argument("--limit", type=int, default=0, help="only the first N files (0: all)")
    a = ap.parse_args(argv)

    import librosa
    import numpy as np
    import tensorflow as tf
    from musicnn import configuration as config
    from musicnn import extractor as mx
    from musicnn import models

    tf.compat.v1.disable_eager_execution()
    files = sorted(f for f in glob.glob(os.path.join(a.audio_dir, "**", "*"), recursive=True)
                   if f.lower().endswith(AUDIO_EXT))
    if a.limit:
        files = files[: a.limit]
    if not files:
        raise SystemExit(f"no audio files ({', '.join(AUDIO_EXT)}) under {a.audio_dir}")
    # Patch length/hop in frames exactly as musicnn.extractor computes them.
    n_frames = librosa.time_to_frames(a.input_length, sr=config.SR, n_fft=config.FFT_SIZE,
                                      hop_length=config.FFT_HOP) + 1
    hop = n_frames if not a.hop_seconds else librosa.time_to_frames(
        a.hop_seconds, sr=config.SR, n_fft=config.FFT_SIZE, hop_length=config.FFT_HOP)
    labels = config.MTT_LABELS if a.model.startswith("MTT") else config.MSD_LABELS

    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, n_frames, config.N_MELS])
        is_training = tf.compat.v1.placeholder(tf.bool)
        out = models.define_model(x, is_training, a.model, len(labels))
    layer = dict(zip(("logits", "timbral", "temporal", "cnn1", "cnn2", "cnn3", "mean_pool", "max_pool",
                      "penultimate"), out, strict=True))[a.layer]
    sess = tf.compat.v1.Session()
    sess.run(tf.compat.v1.global_variables_initializer())
    tf.compat.v1.train.Saver().restore(sess, os.path.join(os.path.dirname(mx.__file__), a.model) + "/")

    os.makedirs(a.out, exist_ok=True)
    t0 = time.time()
    first = None
    def patches_of(f: str) -> np.ndarray:
        if a.spectrogram == "original":
            return mx.batch_data(f, n_frames, hop)[0]
        audio, sr = librosa.load(f, sr=config.SR)  # the calls of musicnn's batch_data, in float32
        mel = librosa.feature.melspectrogram(y=audio, sr=sr, hop_length=config.FFT_HOP, n_fft=config.FFT_SIZE,
                                             n_mels=config.N_MELS).T.astype(np.float32)
        rep = np.log10(10000 * mel + 1)
        starts = range(0, rep.shape[0] - n_frames + 1, hop)
        return np.stack([rep[t : t + n_frames] for t in starts])

    n_nonfinite = 0
    for i, f in enumerate(files):
        patches = patches_of(f)
        feats = np.asarray(sess.run(layer, feed_dict={x: patches, is_training: False}), np.float32)
        feats = feats.reshape(feats.shape[0], -1)  # [P, D]
        n_nonfinite += int(not np.isfinite(feats).all())
        np.save(os.path.join(a.out, os.path.splitext(os.path.basename(f))[0] + ".npy"), feats)
        first = feats if first is None else first
        if (i + 1) % 50 == 0:
            print(f"{i + 1}/{len(files)} files, {(i + 1) / (time.time() - t0):.2f} files/s", flush=True)
    dt = time.time() - t0
    from importlib.metadata import version

    meta = {"model": a.model, "layer": a.layer, "spectrogram": a.spectrogram, "files_with_nonfinite": n_nonfinite,
            "dim": int(first.shape[1]), "input_length_s": a.input_length,
            "hop_frames": int(hop), "patch_frames": int(n_frames), "files": len(files), "time_s": dt,
            "files_per_s": len(files) / dt,
            "versions": {p: version(p) for p in ("musicnn", "tensorflow-cpu", "librosa", "numpy")
                         if _installed(p)}}
    if a.check:
        sess.close()
        _, _, ref = mx.extractor(files[0], model=a.model, input_length=a.input_length,
                                 input_overlap=a.hop_seconds or False, extract_features=True)
        r = np.asarray(ref[a.layer], np.float32).reshape(first.shape[0], -1)
        meta["check"] = {"file": os.path.basename(files[0]), "max_abs_diff_vs_musicnn_extractor":
                         float(np.abs(r - first).max()), "original_is_finite": bool(np.isfinite(r).all()),
                         "shape": list(first.shape)}
    with open(os.path.join(a.out, "meta.json"), "w") as fh:
        json.dump(meta, fh, indent=1)
    print(json.dumps(meta, indent=1))


def _installed(dist: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        version(dist)
        return True
    except PackageNotFoundError:
        return False


if __name__ == "__main__":
    main()
