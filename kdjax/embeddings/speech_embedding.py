"""Google's speech embedding (96-d per 80 ms over 0.78 s windows), as a cache-stage extractor.

Model: the `speech_embedding` module of Lin, Kilgour, Roblek, Sharifi, "Training Keyword
Spotters with Limited and Synthesized Speech Data", ICASSP 2020 (arXiv 2002.01322; TFHub
`google/speech_embedding/1`), trained by Google on a large keyword-spotting corpus. We run the
ONNX re-implementation that openWakeWord 0.4.0 ships (github.com/dscripka/openWakeWord,
`openwakeword/resources/models/`): `melspectrogram.onnx` (16 kHz audio -> 32 mel bins every
10 ms) and `embedding_model.onnx` (76 mel frames -> 96-d). Preprocessing as openWakeWord's
`openwakeword.utils.AudioFeatures._get_embeddings` / `embed_clips`: audio on the int16 scale
(a float waveform in [-1, 1] times 32768), the mel output transformed by `x / 10 + 2` (what
openWakeWord applies to bring its ONNX mel close to TFHub's), windows of 76 mel frames every
8 frames. tests/test_speech_embedding.py checks equality with `AudioFeatures.embed_clips` itself.

LICENCE (read before use): openWakeWord's code is Apache-2.0. Its README says that the
pre-trained models it includes are licensed CC BY-NC-SA 4.0 (non-commercial, share-alike),
while describing the embedding model as Google's `speech_embedding` (published on TFHub under
Apache-2.0) "manually re-implemented" by openWakeWord. We treat the two ONNX files as
research-use only: embeddings and teachers computed from them, and students distilled from
those, are for non-commercial research. kdjax never commits, vendors or redistributes the model
files: the user installs the openWakeWord wheel, and the files are located inside it.

Runtime (optional dependencies; not part of any kdjax extra):
  pip install --no-deps openwakeword==0.4.0   (the 9 MB wheel with the two ONNX files; later
                                              versions download models at run time)
  onnxruntime                                 (the `export` extra; requirements-export.txt)
The package is located with `importlib.util.find_spec`, never imported: its `__init__` imports
its wake-word models and their dependencies (scipy, scikit-learn, tqdm), which this extractor
does not need.

The ONNX mel is log-power (dB / 10 after the transform) clipped at 80 dB below the loudest
bin of the clip (a `top_db`-style floor over its whole input, measured): the zero padding sits at
that floor, and a clip's tokens depend (weakly, near silence) on the whole clip.

Framing and alignment (measured on the ONNX mel with impulses, see the tests): mel frame j of an
input covers samples `[160 j, 160 j + 512)` (a 400-sample window at offsets 56-455), centred at
`160 j + 256`. Embedding token k of a signal reads mel frames `8 k ... 8 k + 75`, i.e. 12512
samples (0.782 s) starting at `1280 k`, centred at `1280 k + 6256`. `extract` pads the clip with
`PAD_LEFT = 6256` zeros in front (and zeros after, enough for the last window), so that token k
is centred on sample `1280 k` (k * 80 ms) of the ORIGINAL clip, k = 0 ... S // 1280: a clip of
S samples gives `num_tokens(S) = S // 1280 + 1` tokens (1 s: 13; 2 s: 26; 4 s: 51), the first
centred on the clip's first sample, each spanning +-0.391 s. With kdjax's centred STFT
front-ends (frame t centred at `hop * t`), token k is centred on front-end frame
`1280 k / hop`: frame 4 k at the Temporal KD recipe's 20 ms hop (320 samples), 8 k at 10 ms.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from typing import Any

import numpy as np

SAMPLE_RATE = 16000
MEL_BINS = 32
MEL_HOP = 160  # samples between mel frames (10 ms)
MEL_FRAME = 512  # samples per mel frame: a 400-sample window at offsets 56-455, centre 256
WINDOW_FRAMES = 76  # mel frames per embedding window
STEP_FRAMES = 8  # mel frames between embedding windows
TOKEN_HOP = STEP_FRAMES * MEL_HOP  # 1280 samples = 80 ms between tokens
WINDOW_SAMPLES = (WINDOW_FRAMES - 1) * MEL_HOP + MEL_FRAME  # 12512 samples = 0.782 s
PAD_LEFT = WINDOW_SAMPLES // 2  # 6256: token k centred on sample 1280 k of the clip
EMBED_DIM = 96
INT16_SCALE = 32768.0  # float audio in [-1, 1] -> the int16 scale the ONNX mel expects
MODEL_FILES = ("melspectrogram.onnx", "embedding_model.onnx")
INSTALL_HINT = (
    "pip install --no-deps openwakeword==0.4.0 onnxruntime (the wheel ships the two ONNX files; "
    "see kdjax/embeddings/speech_embedding.py for their licence)"
)


def model_dir() -> str:
    """The directory holding `melspectrogram.onnx` and `embedding_model.onnx` in openWakeWord.

    Found with `importlib.util.find_spec("openwakeword")` (the package is not imported).

    Raises:
      ModuleNotFoundError: openwakeword is not installed (the message names the pip command).
      FileNotFoundError: a model file is missing there (names the path; openwakeword 0.4.0 ships
        both, later versions download them at run time).
    """
    try:
        spec = importlib.util.find_spec("openwakeword")
    except ModuleNotFoundError:
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the speech-embedding teacher needs the openwakeword package: {INSTALL_HINT}",
            name="openwakeword",
        )
    d = os.path.join(list(spec.submodule_search_locations)[0], "resources", "models")
    for f in MODEL_FILES:
        if not os.path.isfile(os.path.join(d, f)):
            raise FileNotFoundError(
                f"{os.path.join(d, f)} not found (openwakeword 0.4.0 ships it: {INSTALL_HINT})"
            )
    return d


def num_tokens(num_samples: int) -> int:
    """Tokens `extract` gives for a clip of `num_samples` samples: `num_samples // 1280 + 1`."""
    if num_samples < 1:
        raise ValueError(f"num_samples={num_samples}: expected >= 1")
    return int(num_samples) // TOKEN_HOP + 1


def token_centres(num_samples: int) -> np.ndarray:
    """Centre of each token, in samples of the original clip: `[num_tokens] = 1280 k`."""
    return np.arange(num_tokens(num_samples)) * TOKEN_HOP


def pad_for_centred_windows(audio: np.ndarray) -> np.ndarray:
    """`[..., S]` -> `[..., 1280 (K - 1) + 12512]` (K = `num_tokens(S)`): `PAD_LEFT` zeros in
    front, zeros after, so that window k of the padded signal is centred on sample 1280 k."""
    x = np.asarray(audio)
    s = x.shape[-1]
    total = TOKEN_HOP * (num_tokens(s) - 1) + WINDOW_SAMPLES
    pad = [(0, 0)] * (x.ndim - 1) + [(PAD_LEFT, total - PAD_LEFT - s)]
    return np.pad(x, pad)


class SpeechEmbedding:
    """The two onnxruntime sessions (mel, embedding) of openWakeWord 0.4.0's ONNX files.

    Args:
      directory: where the two files are (default `model_dir()`).
      num_threads: onnxruntime intra-op threads (inter-op 1).

    Raises:
      ModuleNotFoundError: onnxruntime or openwakeword missing (names the pip command).
      FileNotFoundError: a model file missing.
    """

    def __init__(self, directory: str | None = None, *, num_threads: int = 1):
        try:
            import onnxruntime as ort
        except ModuleNotFoundError:
            raise ModuleNotFoundError(
                f"the speech-embedding teacher needs onnxruntime: {INSTALL_HINT}",
                name="onnxruntime",
            ) from None
        self.directory = directory or model_dir()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(num_threads)
        opts.inter_op_num_threads = 1

        def session(f: str):
            return ort.InferenceSession(
                os.path.join(self.directory, f),
                sess_options=opts,
                providers=["CPUExecutionProvider"],
            )

        self.mel, self.embedding = session(MODEL_FILES[0]), session(MODEL_FILES[1])

    def melspectrogram(self, audio_int16_scale: np.ndarray) -> np.ndarray:
        """`[B, L]` audio on the int16 scale -> `[B, F, 32]` mel, `x / 10 + 2` applied
        (openWakeWord's transform), F = (L - 512) // 160 + 1.

        One clip per call, as openWakeWord's `embed_clips`: the ONNX mel clips its log output at
        80 dB below the loudest bin of its WHOLE input (measured), so a batched call would make
        a clip's mel depend on the other clips of the batch."""
        x = np.asarray(audio_int16_scale, np.float32)
        out = [self.mel.run(None, {"input": row[None]})[0] for row in x]  # [1, 1, F, 32] each
        return np.concatenate(out).reshape(x.shape[0], -1, MEL_BINS) / 10.0 + 2.0

    def embed_mel(self, mel: np.ndarray) -> np.ndarray:
        """`[B, F, 32]` mel -> `[B, K, 96]`, K = (F - 76) // 8 + 1 windows of 76 frames every 8."""
        b, f, _ = mel.shape
        k = (f - WINDOW_FRAMES) // STEP_FRAMES + 1
        if k < 1:
            raise ValueError(f"embed_mel: {f} mel frames, the model needs >= {WINDOW_FRAMES}")
        idx = np.arange(k)[:, None] * STEP_FRAMES + np.arange(WINDOW_FRAMES)[None, :]
        windows = mel[:, idx].reshape(b * k, WINDOW_FRAMES, MEL_BINS, 1).astype(np.float32)
        out = self.embedding.run(None, {"input_1": windows})[0]  # [B * K, 1, 1, 96]
        return out.reshape(b, k, EMBED_DIM)


@functools.lru_cache(maxsize=4)
def _model(directory: str | None, num_threads: int) -> SpeechEmbedding:
    return SpeechEmbedding(directory, num_threads=num_threads)


def extract_batch(
    audio: np.ndarray,
    sample_rate: int,
    *,
    num_threads: int = 1,
    model: SpeechEmbedding | None = None,
) -> dict[str, np.ndarray]:
    """The cache-stage extractor: `audio [B, S]` at 16 kHz -> `{"embedding": [B, K, 96]}`.

    Each clip is scaled to the int16 range (times 32768), padded (`pad_for_centred_windows`) so
    that token k is centred on sample 1280 k of the clip (module docstring: alignment), run
    through the mel model (`x / 10 + 2`) and the embedding model on windows of 76 mel frames
    every 8: K = `num_tokens(S)` = S // 1280 + 1 tokens, 80 ms apart.

    Args:
      audio: `[B, S]` float waveforms in [-1, 1] (every row the same S: the cache stage crops or
        pads to `data.clip_seconds`).
      sample_rate: Hz; must be 16000 (the model's rate; no resampling here).
      num_threads: onnxruntime intra-op threads (sessions built once per setting and kept).
      model: a `SpeechEmbedding` to use instead of the cached one.

    Returns:
      `{"embedding": [B, K, 96]}` float32.

    Raises:
      ValueError: audio not `[B, S]`, or a sample rate other than 16 kHz.
      ModuleNotFoundError / FileNotFoundError: openwakeword or onnxruntime missing.

    Source: openWakeWord 0.4.0 `openwakeword/utils.py` (`AudioFeatures._get_melspectrogram`,
    `_get_embeddings_batch`), Lin et al. ICASSP 2020 (the model).
    """
    a = np.asarray(audio, np.float32)
    if a.ndim != 2:
        raise ValueError(f"speech_embedding.extract_batch: expected audio [B, S], got {a.shape}")
    if int(sample_rate) != SAMPLE_RATE:
        raise ValueError(
            f"speech_embedding.extract_batch: sample_rate={sample_rate} Hz, the model reads "
            f"{SAMPLE_RATE} Hz audio (resample the data first)"
        )
    m = model or _model(None, int(num_threads))
    mel = m.melspectrogram(pad_for_centred_windows(a * INT16_SCALE))
    return {"embedding": m.embed_mel(mel).astype(np.float32)}


def extract(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, **kw: Any) -> np.ndarray:
    """One clip `[S]` -> `[K, 96]` (`extract_batch` on a batch of one; same keywords)."""
    a = np.asarray(audio)
    if a.ndim != 1:
        raise ValueError(f"speech_embedding.extract: expected audio [S], got {a.shape}")
    return extract_batch(a[None], sample_rate, **kw)["embedding"][0]


def tokens_to_frames(dist: Any, *, num_frames: int, frames_per_token: float) -> Any:
    """Maps a distribution over the K tokens to `num_frames` front-end frames (linear interpolation).

    Token k is centred on frame `k * frames_per_token` (module docstring: 4 at a 20 ms hop).
    Frame t takes the value at position `u = t / frames_per_token` in token units, linearly
    interpolated between tokens `floor(u)` and `floor(u) + 1` (clamped to the last token beyond
    it), then the row is renormalised to sum 1. Not `align_time`'s half-pixel interpolation,
    which assumes that the K tokens tile the T frames evenly (K * frames_per_token = T); here
    the first and last tokens are centred on the clip's first and last samples.

    Args:
      dist: `[B, K]` (rows sum to 1; e.g. `kdjax.losses.rollout_frame_distribution`).
      num_frames: T, the front-end's frame count (a centred STFT: 1 + samples // hop).
      frames_per_token: token hop / front-end hop (1280 / 320 = 4).

    Returns:
      `[B, T]` float, rows sum to 1.

    Raises:
      ValueError: `dist` not 2-D, `num_frames < 1` or `frames_per_token <= 0`.

    Source: ours (the alignment of `extract_batch`'s tokens); Choi et al. ICASSP 2022 interpolate
    the teacher's rollout to the student's frames linearly.
    """
    import jax.numpy as jnp

    if getattr(dist, "ndim", None) != 2:
        raise ValueError(f"tokens_to_frames: expected dist [B, K], got {np.shape(dist)}")
    if num_frames < 1 or not frames_per_token > 0:
        raise ValueError(
            f"tokens_to_frames: num_frames={num_frames} (>= 1), "
            f"frames_per_token={frames_per_token} (> 0)"
        )
    k = dist.shape[1]
    u = np.minimum(np.arange(num_frames) / float(frames_per_token), k - 1)
    lo = np.floor(u).astype(int)
    hi = np.minimum(lo + 1, k - 1)
    w = np.zeros((k, num_frames), np.float32)  # [K, T], static
    np.add.at(w, (lo, np.arange(num_frames)), 1.0 - (u - lo))
    np.add.at(w, (hi, np.arange(num_frames)), u - lo)
    out = jnp.einsum("bk,kt->bt", dist, jnp.asarray(w, dist.dtype), precision="highest")
    return out / jnp.sum(out, axis=-1, keepdims=True)


def rollout_frames(
    attention: Any, *, num_frames: int, frames_per_token: float, **row_kw: Any
) -> Any:
    """The Temporal KD target of the speech-embedding teacher on the front-end's frames.

    `kdjax.losses.rollout_frame_distribution(attention, **row_kw)` (rollout, the class token's
    row over the K embedding tokens) then `tokens_to_frames`: `[L, B, H, K+1, K+1] -> [B, T]`.
    A cache-stage derived output (`fn: "kdjax.embeddings.speech_embedding:rollout_frames"`).
    """
    from kdjax.losses import rollout_frame_distribution

    dist = rollout_frame_distribution(attention, **row_kw)
    return tokens_to_frames(dist, num_frames=num_frames, frames_per_token=frames_per_token)
