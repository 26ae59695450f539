"""Spectral front-ends in pure jnp: STFT, mel filterbank, log-mel, MFCC, deltas, CQT, resampling.

Every function is jit-able, differentiable with respect to the waveform, and batched over any
leading axes. Feature layout everywhere is **time frames first, then frequency**:
``wave [..., N] -> features [..., T, F]`` (librosa returns ``[..., F, T]``; transpose to compare).

Units: sample rates in Hz, lengths (n_fft, win_length, hop_length) in samples, frequencies in
Hz, levels in dB (10 log10 of power). All parameters that set array shapes are static Python
values (they are baked into the traced program); waveforms are the only traced inputs.

Numerics follow librosa 0.11 (`librosa.stft`, `librosa.filters.mel`,
`librosa.feature.melspectrogram`, `librosa.power_to_db`, `librosa.feature.mfcc`,
`librosa.feature.delta`, `librosa.cqt`); tests/test_frontends.py measures the agreement.

Entry point for configs: `make_frontend(cfg)` with `cfg["name"]` in `FRONTEND_NAMES` (or a key of
`PRESETS`) returns ``fn(wave [B, N] float32) -> features [B, T, F]``.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "FRONTEND_NAMES",
    "PRESETS",
    "cqt",
    "cqt_frequencies",
    "deltas",
    "get_window",
    "hz_to_mel",
    "log_cqt",
    "log_mel",
    "make_frontend",
    "mel_filterbank",
    "mel_frequencies",
    "mel_spectrogram",
    "mel_to_hz",
    "mfcc",
    "num_frames",
    "power_to_db",
    "resample",
    "spectrogram",
    "stft",
]

# ----------------------------------------------------------------------------------------------
# Input checks (shared). Shapes/params are static, so these run once at trace time.
# ----------------------------------------------------------------------------------------------


def _check_wave(x: jax.Array, name: str = "x", min_rank: int = 1) -> jax.Array:
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(
            f"{name}: expected a real floating waveform (float32/float64) of shape [..., N], got "
            f"dtype {x.dtype}; convert integer PCM first (e.g. int16 / 32768)"
        )
    if x.ndim < min_rank:
        raise ValueError(f"{name}: expected rank >= {min_rank} ([..., N] samples), got shape {x.shape}")
    return x


def _check_pos_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name}: expected a positive integer (samples), got {value!r}")
    return int(value)


def _stft_params(n_fft: int, win_length: int | None, hop_length: int | None) -> tuple[int, int, int]:
    n_fft = _check_pos_int(n_fft, "n_fft")
    win_length = n_fft if win_length is None else _check_pos_int(win_length, "win_length")
    hop_length = win_length // 4 if hop_length is None else _check_pos_int(hop_length, "hop_length")
    if win_length > n_fft:
        raise ValueError(f"win_length: expected win_length <= n_fft, got win_length={win_length} > n_fft={n_fft}")
    return n_fft, win_length, hop_length


def _check_sr(sample_rate: Any) -> float:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.number)) or sample_rate <= 0:
        raise ValueError(f"sample_rate: expected a positive number (Hz), got {sample_rate!r}")
    return float(sample_rate)


# ----------------------------------------------------------------------------------------------
# Windows
# ----------------------------------------------------------------------------------------------

_WINDOW_ALIASES = {
    "hann": "hann",
    "hanning": "hann",
    "hamming": "hamming",
    "blackman": "blackman",
    "rectangular": "boxcar",
    "boxcar": "boxcar",
    "ones": "boxcar",
    "rect": "boxcar",
    "bartlett": "bartlett",
    "triangular": "bartlett",
}


def get_window(window: str | np.ndarray, win_length: int, n_fft: int | None = None) -> np.ndarray:
    """Periodic ("fftbins") analysis window, zero-padded symmetrically to `n_fft` samples.

    Matches `librosa.filters.get_window(window, win_length, fftbins=True)` followed by
    `librosa.util.pad_center(w, size=n_fft)` (scipy.signal.get_window periodic windows).

    Args:
      window: a name in {"hann", "hanning", "hamming", "blackman", "rectangular", "boxcar",
        "ones", "bartlett", "triangular"} or an explicit array of `win_length` samples.
      win_length: window length in samples.
      n_fft: frame length in samples (>= win_length); defaults to win_length.
    Returns:
      float64 NumPy array [n_fft] (a static constant; cast at use).
    Raises:
      ValueError: unknown window name (lists valid names), array of the wrong length, or
        win_length > n_fft.
    """
    win_length = _check_pos_int(win_length, "win_length")
    n_fft = win_length if n_fft is None else _check_pos_int(n_fft, "n_fft")
    if win_length > n_fft:
        raise ValueError(f"win_length: expected win_length <= n_fft, got {win_length} > {n_fft}")
    if isinstance(window, str):
        kind = _WINDOW_ALIASES.get(window.lower())
        if kind is None:
            raise ValueError(f"window: unknown window {window!r}; valid names: {sorted(_WINDOW_ALIASES)}")
        # Periodic window of length M = symmetric window of length M + 1 without its last sample.
        n = np.arange(win_length, dtype=np.float64)
        phase = 2.0 * np.pi * n / win_length
        if kind == "hann":
            w = 0.5 - 0.5 * np.cos(phase)
        elif kind == "hamming":
            w = 0.54 - 0.46 * np.cos(phase)
        elif kind == "blackman":
            w = 0.42 - 0.5 * np.cos(phase) + 0.08 * np.cos(2.0 * phase)
        elif kind == "bartlett":
            w = 1.0 - np.abs(2.0 * n / win_length - 1.0)
        else:
            w = np.ones(win_length)
    else:
        w = np.asarray(window, dtype=np.float64)
        if w.shape != (win_length,):
            raise ValueError(f"window: expected an array of shape ({win_length},), got {w.shape}")
    lpad = (n_fft - win_length) // 2
    return np.pad(w, (lpad, n_fft - win_length - lpad))


# ----------------------------------------------------------------------------------------------
# STFT
# ----------------------------------------------------------------------------------------------


def num_frames(n_samples: int, n_fft: int, hop_length: int, center: bool = True) -> int:
    """Number of STFT frames T for a clip of `n_samples` samples (librosa's convention)."""
    padded = n_samples + 2 * (n_fft // 2) if center else n_samples
    if padded < n_fft:
        return 0
    return 1 + (padded - n_fft) // hop_length


def _frame(x: jax.Array, frame_length: int, hop_length: int) -> jax.Array:
    """[..., N] -> [..., T, frame_length] overlapping frames, T = 1 + (N - frame_length) // hop.

    One `lax.gather` whose slices are whole contiguous frames of every batch row at once
    (slice_sizes = (batch, frame_length), one start index per frame), written directly in
    [batch, T, frame_length] order. On the shared 2-core XLA:CPU machine it was as fast as or
    faster than the element-index gather `_frame_gather` (which gathers [batch]-strided columns
    and transposes; 1.0-1.2x the time, noisy) and clearly faster than slices+concatenate
    `_frame_slices` (1.4-1.5x the time end to end); see benchmarks/results/frontends.md.
    Differentiable (the transpose is a scatter-add).
    """
    lead, n = x.shape[:-1], x.shape[-1]
    t = 1 + (n - frame_length) // hop_length
    x2 = x.reshape(-1, n)
    starts = jnp.asarray((hop_length * np.arange(t, dtype=np.int64))[:, None].astype(np.int32))
    dn = jax.lax.GatherDimensionNumbers(offset_dims=(0, 2), collapsed_slice_dims=(), start_index_map=(1,))
    frames = jax.lax.gather(x2, starts, dn, slice_sizes=(x2.shape[0], frame_length),
                            mode=jax.lax.GatherScatterMode.PROMISE_IN_BOUNDS)
    return frames.reshape(*lead, t, frame_length)


def _frame_slices(x: jax.Array, frame_length: int, hop_length: int) -> jax.Array:
    """Same as `_frame` from ceil(frame_length / hop) shifted block views + one concatenate.

    Kept for benchmarking only (slower on XLA:CPU, see `_frame`).
    """
    n = x.shape[-1]
    t = 1 + (n - frame_length) // hop_length
    k = -(-frame_length // hop_length)  # blocks per frame
    need = (t - 1 + k) * hop_length
    if need > n:
        x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, need - n)])
    blocks = x[..., :need].reshape(*x.shape[:-1], t - 1 + k, hop_length)
    frames = jnp.concatenate([blocks[..., i : i + t, :] for i in range(k)], axis=-1)
    return frames[..., :frame_length]


def _frame_gather(x: jax.Array, frame_length: int, hop_length: int) -> jax.Array:
    """Same as `_frame` with an element-index gather (kept for benchmarking)."""
    t = 1 + (x.shape[-1] - frame_length) // hop_length
    idx = hop_length * np.arange(t)[:, None] + np.arange(frame_length)[None, :]
    return x[..., idx]


def stft(
    x: jax.Array,
    *,
    n_fft: int = 2048,
    win_length: int | None = None,
    hop_length: int | None = None,
    window: str | np.ndarray = "hann",
    center: bool = True,
    pad_mode: str = "constant",
) -> jax.Array:
    """Short-time Fourier transform, rfft of windowed frames.

    Shapes: x [..., N] (samples) -> complex [..., T, n_fft // 2 + 1], with
    T = 1 + N // hop_length when centered (librosa's count). Bin f is at f * sample_rate / n_fft Hz;
    frame t is centred on sample t * hop_length (when `center`).

    Matches `librosa.stft(x, n_fft=, hop_length=, win_length=, window=, center=, pad_mode=)` (0.11,
    whose default pad_mode is "constant", i.e. zeros), transposed to [..., T, F].

    Args:
      x: real float waveform [..., N].
      n_fft: FFT size in samples. win_length: window length in samples (default n_fft; <= n_fft,
        the window is zero-padded to n_fft, centred). hop_length: frame step in samples
        (default win_length // 4).
      window: window name (see `get_window`) or an array [win_length].
      center: pad n_fft // 2 samples on both sides so frame t is centred at t * hop_length.
      pad_mode: "constant" (zeros, librosa 0.11 default) or "reflect" (torch default), or any
        other `jnp.pad` mode ("edge", "symmetric", "wrap").
    Returns:
      complex64 (complex128 for float64 input) [..., T, n_fft // 2 + 1].
    Raises:
      ValueError: non-floating x, win_length > n_fft, non-positive sizes, unknown pad_mode/window,
        or a clip too short to give one frame with center=False.
    """
    x = _check_wave(x)
    n_fft, win_length, hop_length = _stft_params(n_fft, win_length, hop_length)
    kw = dict(n_fft=n_fft, win_length=win_length, hop_length=hop_length, window=window, center=center,
              pad_mode=pad_mode)
    return _in_chunks(lambda a: _stft(a, **kw), x, _stft_row_bytes(x, n_fft, hop_length, center))


# Batch rows are processed in chunks of about this many bytes of frames ([chunk, T, n_fft]), via
# lax.map over [n_chunks, chunk, N]. On XLA:CPU a fresh multi-10-MB intermediate (frames, complex
# STFT) is mmap-ed and page-faulted on every call; chunked intermediates stay small and are reused.
# Measured ~2x faster for 64 x 5 s clips (benchmarks/results/frontends.md); results are identical.
_CHUNK_BYTES = 8 << 20


def _stft_row_bytes(x: jax.Array, n_fft: int, hop_length: int, center: bool) -> int:
    """Bytes of STFT frames per batch row (one clip): T * n_fft * itemsize."""
    return max(1, num_frames(x.shape[-1], n_fft, hop_length, center)) * n_fft * x.dtype.itemsize


def _in_chunks(fn: Callable[[jax.Array], jax.Array], x: jax.Array, row_bytes: int) -> jax.Array:
    """fn(x) for fn batched over leading axes ([..., N] -> [..., *out]), in chunks of rows.

    Rows are flattened to [M, N] and mapped in chunks of max(1, _CHUNK_BYTES // row_bytes) rows with
    `lax.map` (a scan); a remainder of M % chunk rows is one more call. fn must treat rows
    independently (every STFT-based front-end here does). Differentiable.
    """
    lead, n = x.shape[:-1], x.shape[-1]
    m = math.prod(lead)
    chunk = max(1, _CHUNK_BYTES // max(1, int(row_bytes)))
    if m <= chunk:
        return fn(x)
    x2 = x.reshape(m, n)
    k = m // chunk
    ys = jax.lax.map(fn, x2[: k * chunk].reshape(k, chunk, n))
    y = ys.reshape(k * chunk, *ys.shape[2:])
    if k * chunk < m:
        y = jnp.concatenate([y, fn(x2[k * chunk :])], axis=0)
    return y.reshape(*lead, *y.shape[1:])


def _stft(x: jax.Array, *, n_fft: int, win_length: int | None, hop_length: int | None,
          window: str | np.ndarray, center: bool, pad_mode: str) -> jax.Array:
    """`stft` on the whole batch at once (no chunking); the public `stft` documents it."""
    x = _check_wave(x)
    n_fft, win_length, hop_length = _stft_params(n_fft, win_length, hop_length)
    valid_pad = ("constant", "reflect", "edge", "symmetric", "wrap")
    if pad_mode not in valid_pad:
        raise ValueError(f"pad_mode: expected one of {valid_pad}, got {pad_mode!r}")
    w = get_window(window, win_length, n_fft)
    if center:
        pad = [(0, 0)] * (x.ndim - 1) + [(n_fft // 2, n_fft // 2)]
        # jnp.pad reflects repeatedly when the pad is longer than the clip, like np.pad.
        x = jnp.pad(x, pad, mode=pad_mode)
    if x.shape[-1] < n_fft:
        raise ValueError(
            f"x: expected at least n_fft={n_fft} samples with center=False, got {x.shape[-1]}"
        )
    # Full n_fft frames times the zero-padded window, then an unpadded rfft. Framing only the
    # window's support and letting rfft(n=n_fft) zero-pad was measured ~1.3x slower on XLA:CPU
    # (the padding is a separate copy of the frames); the pad of `x` fuses into the gather.
    frames = _frame(x, n_fft, hop_length) * jnp.asarray(w, dtype=x.dtype)
    return jnp.fft.rfft(frames, axis=-1)


def _safe_abs(z: jax.Array) -> jax.Array:
    """|z| with a zero (not NaN) gradient at z == 0 (silence)."""
    p = jnp.real(z) ** 2 + jnp.imag(z) ** 2
    pos = p > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, p, 1.0)), 0.0)


def _magnitude_power(z: jax.Array, power: float) -> jax.Array:
    if power == 2.0:
        return jnp.real(z) ** 2 + jnp.imag(z) ** 2  # no sqrt: smooth everywhere
    if power == 1.0:
        return _safe_abs(z)
    return _safe_abs(z) ** power


def spectrogram(
    x: jax.Array,
    *,
    n_fft: int = 2048,
    win_length: int | None = None,
    hop_length: int | None = None,
    window: str | np.ndarray = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    power: float = 2.0,
) -> jax.Array:
    """|STFT|**power: [..., N] -> [..., T, n_fft // 2 + 1] (power=1: magnitude, 2: power).

    Matches `np.abs(librosa.stft(...)) ** power` (librosa's `_spectrogram`). Gradient is finite at
    silence (|z| uses a safe square root). Raises ValueError for power <= 0 and as `stft`.
    """
    if not power > 0:
        raise ValueError(f"power: expected > 0 (1 = magnitude, 2 = power), got {power!r}")
    x = _check_wave(x)
    n_fft, win_length, hop_length = _stft_params(n_fft, win_length, hop_length)
    kw = dict(n_fft=n_fft, win_length=win_length, hop_length=hop_length, window=window, center=center,
              pad_mode=pad_mode)
    return _in_chunks(lambda a: _magnitude_power(_stft(a, **kw), float(power)), x,
                      _stft_row_bytes(x, n_fft, hop_length, center))


# ----------------------------------------------------------------------------------------------
# Mel scale
# ----------------------------------------------------------------------------------------------


def hz_to_mel(freqs: np.ndarray | float, *, htk: bool = False) -> np.ndarray:
    """Hz -> mel. htk: 2595 log10(1 + f / 700); else Slaney's (linear below 1 kHz, log above).

    Source: `librosa.hz_to_mel` (Slaney 1998 Auditory Toolbox; O'Shaughnessy 1987 for HTK).
    NumPy (static) helper: used to build filterbanks at trace time.
    """
    f = np.asarray(freqs, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-300) / min_log_hz) / logstep, mels)


def mel_to_hz(mels: np.ndarray | float, *, htk: bool = False) -> np.ndarray:
    """mel -> Hz, inverse of `hz_to_mel` (`librosa.mel_to_hz`)."""
    m = np.asarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_frequencies(n_mels: int, *, fmin: float = 0.0, fmax: float = 11025.0, htk: bool = False) -> np.ndarray:
    """`n_mels` frequencies (Hz) equally spaced on the mel scale from fmin to fmax (`librosa.mel_frequencies`)."""
    mels = np.linspace(hz_to_mel(fmin, htk=htk), hz_to_mel(fmax, htk=htk), n_mels)
    return mel_to_hz(mels, htk=htk)


@functools.lru_cache(maxsize=64)
def _mel_filterbank_np(sample_rate: float, n_fft: int, n_mels: int, fmin: float, fmax: float,
                       htk: bool, norm: str | None) -> np.ndarray:
    fftfreqs = np.linspace(0.0, sample_rate / 2.0, 1 + n_fft // 2)
    mel_f = mel_frequencies(n_mels + 2, fmin=fmin, fmax=fmax, htk=htk)
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))  # [n_mels, F]
    if norm == "slaney":
        # Each triangle has unit area in Hz: the filterbank is approx. constant energy per channel.
        weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    return np.ascontiguousarray(weights.T)  # [F, n_mels]


def mel_filterbank(
    *,
    sample_rate: float,
    n_fft: int,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: str | None = "slaney",
    dtype: Any = jnp.float32,
) -> jax.Array:
    """Triangular mel filterbank as a projection matrix [n_fft // 2 + 1, n_mels].

    `spec [..., T, n_fft // 2 + 1] @ fb -> [..., T, n_mels]`. This is the transpose of
    `librosa.filters.mel(sr=, n_fft=, n_mels=, fmin=, fmax=, htk=, norm=)`.

    Args:
      sample_rate: Hz. n_fft: FFT size (samples). n_mels: number of bands.
      fmin, fmax: band edges in Hz, 0 <= fmin < fmax <= sample_rate / 2 (fmax default sr / 2).
      htk: HTK mel formula instead of Slaney's. norm: "slaney" (unit-area triangles) or None
        (peak 1).
    Raises:
      ValueError: fmax > sample_rate / 2, fmin < 0, fmin >= fmax, bad n_mels/n_fft, unknown norm.
    """
    sr = _check_sr(sample_rate)
    n_fft = _check_pos_int(n_fft, "n_fft")
    n_mels = _check_pos_int(n_mels, "n_mels")
    fmax = sr / 2.0 if fmax is None else float(fmax)
    fmin = float(fmin)
    if fmax > sr / 2.0:
        raise ValueError(f"fmax: expected <= sample_rate / 2 = {sr / 2.0} Hz, got {fmax} Hz")
    if fmin < 0 or fmin >= fmax:
        raise ValueError(f"fmin: expected 0 <= fmin < fmax = {fmax} Hz, got {fmin} Hz")
    if norm not in ("slaney", None):
        raise ValueError(f"norm: expected 'slaney' or None, got {norm!r}")
    return jnp.asarray(_mel_filterbank_np(sr, n_fft, n_mels, fmin, fmax, bool(htk), norm), dtype=dtype)


def mel_spectrogram(
    x: jax.Array,
    *,
    sample_rate: float,
    n_fft: int = 2048,
    win_length: int | None = None,
    hop_length: int | None = None,
    window: str | np.ndarray = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    power: float = 2.0,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: str | None = "slaney",
) -> jax.Array:
    """Mel spectrogram: [..., N] -> [..., T, n_mels], |STFT|**power projected on a mel filterbank.

    Matches `librosa.feature.melspectrogram(y=x, sr=sample_rate, ...)` (transposed). The projection
    is one matmul. Units: power=2 gives power (amplitude^2 summed over bins). Raises as
    `spectrogram` and `mel_filterbank`.
    """
    if not power > 0:
        raise ValueError(f"power: expected > 0 (1 = magnitude, 2 = power), got {power!r}")
    x = _check_wave(x)
    n_fft, win_length, hop_length = _stft_params(n_fft, win_length, hop_length)
    kw = dict(n_fft=n_fft, win_length=win_length, hop_length=hop_length, window=window, center=center,
              pad_mode=pad_mode)
    fb = mel_filterbank(sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax,
                        htk=htk, norm=norm, dtype=x.dtype)
    # Project only the FFT bins some filter touches (fmin/fmax leave zero rows): the slice fuses
    # into the |STFT|**power computation, the dropped terms are exact zeros.
    nz = np.flatnonzero(np.any(_mel_filterbank_np(_check_sr(sample_rate), int(n_fft), int(n_mels), float(fmin),
                                                  float(sample_rate) / 2.0 if fmax is None else float(fmax),
                                                  bool(htk), norm) != 0, axis=1))
    b0, b1 = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, fb.shape[0])

    def mel(a: jax.Array) -> jax.Array:
        s = _magnitude_power(_stft(a, **kw), float(power))
        return jnp.matmul(s[..., b0:b1], fb[b0:b1], precision=jax.lax.Precision.HIGHEST)

    # Chunked over rows (see `_in_chunks`): frames, complex STFT and power stay per chunk.
    return _in_chunks(mel, x, _stft_row_bytes(x, n_fft, hop_length, center))


def power_to_db(
    s: jax.Array,
    *,
    ref: float | str = 1.0,
    amin: float = 1e-10,
    top_db: float | None = 80.0,
    axes: tuple[int, ...] = (-2, -1),
) -> jax.Array:
    """10 log10(max(amin, s) / max(amin, ref)) in dB, floored at (max - top_db) per example.

    Shapes: [..., T, F] -> [..., T, F]. Matches `librosa.power_to_db(S, ref=, amin=, top_db=)` for
    one example; librosa takes the top_db maximum over the *whole* array, here it is taken per
    example over `axes` (default the last two, time and frequency) so batching does not couple
    examples.

    Args:
      s: power (non-negative). ref: reference power (1.0 -> dB re 1) or "max" (per-example max
        over `axes`, so the loudest bin is 0 dB). amin: floor on power (> 0) that keeps silence
        finite (-100 dB re 1 by default). top_db: dynamic range kept in dB (None: no floor).
    Raises:
      ValueError: amin <= 0, top_db < 0, or unknown ref.
    """
    if not amin > 0:
        raise ValueError(f"amin: expected > 0, got {amin!r}")
    if top_db is not None and top_db < 0:
        raise ValueError(f"top_db: expected >= 0 dB or None, got {top_db!r}")
    s = jnp.abs(s)
    log_spec = 10.0 * jnp.log10(jnp.maximum(amin, s))
    if isinstance(ref, str):
        if ref != "max":
            raise ValueError(f"ref: expected a positive float or 'max', got {ref!r}")
        ref_db = 10.0 * jnp.log10(jnp.maximum(amin, jnp.max(s, axis=axes, keepdims=True)))
        log_spec = log_spec - ref_db
    else:
        log_spec = log_spec - 10.0 * math.log10(max(amin, abs(float(ref))))
    if top_db is not None:
        floor = jnp.max(log_spec, axis=axes, keepdims=True) - top_db
        log_spec = jnp.maximum(log_spec, floor)
    return log_spec


def log_mel(
    x: jax.Array,
    *,
    sample_rate: float,
    n_fft: int = 2048,
    win_length: int | None = None,
    hop_length: int | None = None,
    window: str | np.ndarray = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    power: float = 2.0,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: str | None = "slaney",
    log: str = "db",
    ref: float | str = 1.0,
    amin: float = 1e-10,
    top_db: float | None = 80.0,
    eps: float = 1e-6,
) -> jax.Array:
    """Log-mel spectrogram: [..., N] -> [..., T, n_mels].

    log="db": `power_to_db(mel, ref=, amin=, top_db=)` in dB (librosa's
    `power_to_db(melspectrogram(...))`); log="log_eps": natural log(mel + eps) (as in EAsT/PANNs
    style pipelines, e.g. log(x + 1e-5)). Raises ValueError for an unknown `log`, eps <= 0 and as
    `mel_spectrogram` / `power_to_db`.
    """
    if log not in ("db", "log_eps"):
        raise ValueError(f"log: expected 'db' or 'log_eps', got {log!r}")
    if log == "log_eps" and not eps > 0:
        raise ValueError(f"eps: expected > 0, got {eps!r}")
    m = mel_spectrogram(x, sample_rate=sample_rate, n_fft=n_fft, win_length=win_length,
                        hop_length=hop_length, window=window, center=center, pad_mode=pad_mode,
                        power=power, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm)
    if log == "db":
        return power_to_db(m, ref=ref, amin=amin, top_db=top_db)
    return jnp.log(m + eps)


# ----------------------------------------------------------------------------------------------
# MFCC and deltas
# ----------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _dct_matrix(n_in: int, n_out: int, lifter: float) -> np.ndarray:
    """Orthonormal DCT-II as a [n_in, n_out] matrix (scipy.fft.dct(type=2, norm="ortho")), liftered."""
    n = np.arange(n_in)[:, None]
    k = np.arange(n_out)[None, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    basis[:, 0] *= np.sqrt(0.5)
    if lifter > 0:
        # librosa: M *= 1 + (lifter / 2) * sin(pi * (k + 1) / lifter)
        basis = basis * (1.0 + (lifter / 2.0) * np.sin(np.pi * np.arange(1, n_out + 1) / lifter))[None, :]
    return basis


def mfcc(
    x: jax.Array,
    *,
    sample_rate: float,
    n_mfcc: int = 20,
    lifter: float = 0.0,
    n_fft: int = 2048,
    win_length: int | None = None,
    hop_length: int | None = None,
    window: str | np.ndarray = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    power: float = 2.0,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: str | None = "slaney",
    ref: float | str = 1.0,
    amin: float = 1e-10,
    top_db: float | None = 80.0,
) -> jax.Array:
    """Mel-frequency cepstral coefficients: [..., N] -> [..., T, n_mfcc].

    DCT-II (orthonormal) over the mel axis of the dB log-mel spectrogram, first n_mfcc
    coefficients, optional sinusoidal liftering (lifter > 0; `1 + lifter/2 sin(pi k / lifter)`).
    Matches `librosa.feature.mfcc(y=x, sr=, n_mfcc=, dct_type=2, norm="ortho", lifter=, ...)`
    (transposed; the top_db floor is per example, see `power_to_db`). Units: dB-cepstra.

    Raises:
      ValueError: n_mfcc > n_mels, lifter < 0, and as `log_mel`.
    """
    n_mfcc = _check_pos_int(n_mfcc, "n_mfcc")
    if n_mfcc > n_mels:
        raise ValueError(f"n_mfcc: expected <= n_mels = {n_mels}, got {n_mfcc}")
    if lifter < 0:
        raise ValueError(f"lifter: expected >= 0 (0 = none), got {lifter!r}")
    s = log_mel(x, sample_rate=sample_rate, n_fft=n_fft, win_length=win_length,
                hop_length=hop_length, window=window, center=center, pad_mode=pad_mode,
                power=power, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm, log="db",
                ref=ref, amin=amin, top_db=top_db)
    d = jnp.asarray(_dct_matrix(int(n_mels), n_mfcc, float(lifter)), dtype=s.dtype)
    return jnp.matmul(s, d, precision=jax.lax.Precision.HIGHEST)


@functools.lru_cache(maxsize=32)
def _savgol_center(width: int, order: int) -> np.ndarray:
    """Savitzky-Golay weights for the order-th derivative at the window centre (polyorder=order)."""
    h = width // 2
    k = np.arange(-h, h + 1, dtype=np.float64)
    a = np.vander(k, order + 1, increasing=True)  # [width, order+1]
    return math.factorial(order) * np.linalg.pinv(a)[order]  # correlation weights over k


def deltas(feats: jax.Array, *, width: int = 9, order: int = 1, axis: int = -2) -> jax.Array:
    """Local derivative (delta features) along time: [..., T, F] -> [..., T, F].

    Matches `librosa.feature.delta(data, width=, order=, axis=, mode="interp")`, i.e.
    `scipy.signal.savgol_filter(deriv=order, polyorder=order, mode="interp")` with unit sample
    spacing (per frame). With polyorder == deriv the fitted derivative is constant over a window,
    so mode="interp" equals the centred estimate at the first/last full window repeated at the
    edges; that is what this computes (one weighted sum of `width` shifted slices).

    Args:
      feats: [..., T, F] (time on `axis`, default -2). width: odd window length >= 3 (frames).
      order: derivative order >= 1.
    Raises:
      ValueError: even/too-small width, order < 1, or T < width (as librosa).
    """
    feats = jnp.asarray(feats)
    width = _check_pos_int(width, "width")
    order = _check_pos_int(order, "order")
    if width < 3 or width % 2 == 0:
        raise ValueError(f"width: expected an odd integer >= 3, got {width}")
    if width <= order:
        raise ValueError(f"width: expected > order = {order}, got {width}")
    feats = jnp.moveaxis(feats, axis, -1)
    t = feats.shape[-1]
    if t < width:
        raise ValueError(f"feats: expected at least width={width} frames along axis {axis}, got {t}")
    w = _savgol_center(width, order)
    h = width // 2
    core = sum(float(w[i]) * feats[..., i : t - width + 1 + i] for i in range(width) if w[i] != 0.0)
    core = jnp.asarray(core, dtype=feats.dtype)
    out = jnp.concatenate([jnp.repeat(core[..., :1], h, axis=-1), core,
                           jnp.repeat(core[..., -1:], h, axis=-1)], axis=-1)
    return jnp.moveaxis(out, -1, axis)



# ----------------------------------------------------------------------------------------------
# Resampling (band-limited, windowed-sinc polyphase)
# ----------------------------------------------------------------------------------------------

# (zero_crossings, rolloff, kaiser beta): resampy's "kaiser_best" / "kaiser_fast" designs.
_RESAMPLE_QUALITY = {"best": (64, 0.9475937167399596, 14.769656459379492),
                     "fast": (16, 0.85, 8.555238897277531)}


@functools.lru_cache(maxsize=32)
def _polyphase_kernel(up: int, down: int, quality: str) -> tuple[np.ndarray, int]:
    """Polyphase filter K [W, up] with K[m, p] = g(p * down / up + H - m); g a Kaiser-windowed sinc.

    g(tau) (tau in input samples) low-passes at rolloff * min(1, up/down) of the input Nyquist and
    has unit DC gain, so y[j] = sum_i x[i] g(j * down / up - i) is zero-delay (linear phase).
    """
    zc, rolloff, beta = _RESAMPLE_QUALITY[quality]
    fc = rolloff * min(1.0, up / down)  # cut-off in cycles per input sample, times 2
    half = zc / fc  # support half-width in input samples (zc zero crossings of the sinc)
    h = int(math.ceil(half))
    width = 2 * h + down + 1
    tau = (np.arange(up)[None, :] * down / up) + h - np.arange(width)[:, None]
    arg = np.clip(1.0 - (tau / half) ** 2, 0.0, None)
    win = np.i0(beta * np.sqrt(arg)) / np.i0(beta)
    g = fc * np.sinc(fc * tau) * np.where(np.abs(tau) <= half, win, 0.0)
    return g, h


def resample(x: jax.Array, orig_sr: int, target_sr: int, *, quality: str = "best",
             scale: bool = False) -> jax.Array:
    """Band-limited resampling by the rational ratio target_sr / orig_sr: [..., N] -> [..., M].

    M = ceil(N * target_sr / orig_sr) (librosa's length). Output sample j sits at input time
    j * orig_sr / target_sr (no delay). Method: Kaiser-windowed sinc evaluated polyphase
    (resampy's "kaiser_best": 64 zero crossings, roll-off 0.948 of the lower Nyquist, ~-100 dB
    stopband; "fast": 16 crossings, roll-off 0.85), computed as one strided convolution with
    `up` output channels (one per polyphase branch).
    Content above rolloff * min(orig_sr, target_sr) / 2 Hz is attenuated (the band edge).
    Edges assume zeros outside the clip.

    Matches `librosa.resample(x, orig_sr=, target_sr=, res_type="soxr_hq", scale=)` /
    `scipy.signal.resample_poly` in the pass band (see tests for the tolerance).

    Args:
      x: float waveform [..., N]. orig_sr, target_sr: integer rates in Hz (e.g. 8000, 16000,
        22050, 32000, 44100). quality: "best" or "fast". scale: multiply by sqrt(orig/target)
        (librosa's `scale=True`: keeps total energy).
    Raises:
      ValueError: non-integer/non-positive rates, unknown quality, bad x.
    """
    x = _check_wave(x)
    orig_sr = _check_pos_int(orig_sr, "orig_sr")
    target_sr = _check_pos_int(target_sr, "target_sr")
    if quality not in _RESAMPLE_QUALITY:
        raise ValueError(f"quality: expected one of {sorted(_RESAMPLE_QUALITY)}, got {quality!r}")
    gcd = math.gcd(orig_sr, target_sr)
    up, down = target_sr // gcd, orig_sr // gcd
    if up == down:
        return x
    n = x.shape[-1]
    n_out = -(-n * up // down)
    g, h = _polyphase_kernel(up, down, quality)
    width = g.shape[0]
    n_blocks = -(-n_out // up)
    total = (n_blocks - 1) * down + width
    xp = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(h, max(0, total - n - h))])[..., :total]
    # One strided 1-D convolution with `up` output channels (the polyphase branches): framing
    # + matmul would materialise W / down copies of the signal (W = 139 taps for 2:1).
    lead = xp.shape[:-1]
    lhs = xp.reshape(-1, 1, total)
    rhs = jnp.asarray(g.T[:, None, :], x.dtype)  # [up, 1, W]
    y = jax.lax.conv_general_dilated(lhs, rhs, window_strides=(down,), padding="VALID",
                                     precision=jax.lax.Precision.HIGHEST)  # [B', up, n_blocks]
    y = jnp.swapaxes(y, -1, -2).reshape(*lead, n_blocks * up)[..., :n_out]
    if scale:
        y = y * math.sqrt(orig_sr / target_sr)
    return y


# ----------------------------------------------------------------------------------------------
# Constant-Q transform
# ----------------------------------------------------------------------------------------------


def cqt_frequencies(n_bins: int, *, fmin: float, bins_per_octave: int = 12) -> np.ndarray:
    """Centre frequencies in Hz: fmin * 2 ** (k / bins_per_octave), k < n_bins (`librosa.cqt_frequencies`)."""
    return float(fmin) * 2.0 ** (np.arange(n_bins, dtype=np.float64) / bins_per_octave)


def _cqt_lengths(freqs: np.ndarray, sr: float, filter_scale: float) -> tuple[np.ndarray, float]:
    """Filter lengths (samples) and highest cut-off (Hz), as `librosa.filters.wavelet_lengths` (gamma=0)."""
    logf = np.log2(freqs)
    bpo = np.empty_like(freqs)
    bpo[0] = 1 / (logf[1] - logf[0])
    bpo[-1] = 1 / (logf[-1] - logf[-2])
    bpo[1:-1] = 2 / (logf[2:] - logf[:-2])
    alpha = (2.0 ** (2 / bpo) - 1) / (2.0 ** (2 / bpo) + 1)
    q = filter_scale / alpha
    cutoff = float(np.max(freqs * (1 + 0.5 * 1.50018310546875 / q)))  # hann bandwidth 1.5 bins
    return q * sr / freqs, cutoff


def _cqt_octave_basis(sr: float, freqs: np.ndarray, lengths: np.ndarray, sparsity: float
                      ) -> tuple[np.ndarray, int, int, int]:
    """FFT-domain filters of one octave, as librosa's `__vqt_filter_fft` (hann, L1 norm).

    Returns (basis [n_cols, n_filters] complex128, n_fft, first column, last column + 1): only the
    columns (FFT bins) where some filter is non-zero after sparsification are kept, so the
    projection is a small matmul.
    """
    n_fft = int(2.0 ** np.ceil(np.log2(np.max(lengths))))
    basis = np.zeros((len(freqs), n_fft), np.complex128)
    for i, (ilen, f) in enumerate(zip(lengths, freqs)):
        t = np.arange(np.floor(-ilen / 2), np.floor(ilen / 2), dtype=np.float64)  # librosa's -l//2, l//2
        sig = np.exp(1j * 2 * np.pi * f / sr * t)
        m = len(sig)  # librosa windows the whole (integer-length) support: periodic hann of m
        sig = sig * (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(m) / m))
        sig = sig / np.sum(np.abs(sig))
        lpad = (n_fft - len(sig)) // 2
        basis[i, lpad : lpad + len(sig)] = sig
    basis *= lengths[:, None] / float(n_fft)
    fft_basis = np.fft.fft(basis, n=n_fft, axis=1)[:, : n_fft // 2 + 1]
    if sparsity > 0:  # librosa.util.sparsify_rows: drop the smallest `sparsity` of each row's L1 mass
        mags = np.abs(fft_basis)
        mag_sort = np.sort(mags, axis=1)
        cum = np.cumsum(mag_sort / mags.sum(axis=1, keepdims=True), axis=1)
        thr = mag_sort[np.arange(len(freqs)), np.argmin(cum < sparsity, axis=1)]
        fft_basis = np.where(mags >= thr[:, None], fft_basis, 0.0)
    cols = np.flatnonzero(np.any(np.abs(fft_basis) > 0, axis=0))
    lo, hi = int(cols[0]), int(cols[-1]) + 1
    return fft_basis[:, lo:hi].T, n_fft, lo, hi


def cqt(
    x: jax.Array,
    *,
    sample_rate: float,
    hop_length: int = 512,
    fmin: float = 32.703195662574764,
    n_bins: int = 84,
    bins_per_octave: int = 12,
    filter_scale: float = 1.0,
    sparsity: float = 0.01,
    pad_mode: str = "constant",
    power: float = 1.0,
) -> jax.Array:
    """Constant-Q transform magnitude: [..., N] -> [..., T, n_bins], T = 1 + N // hop_length.

    Bin k is centred at fmin * 2 ** (k / bins_per_octave) Hz; frame t at t * hop_length samples.
    Algorithm of `librosa.cqt` (Schoerkhuber & Klapuri 2010, "Constant-Q transform toolbox for
    music processing"): per octave, top octave first, the hann-windowed complex exponential
    filters (L1-normalised, lengths Q * sr / f) are applied in the FFT domain to a centred STFT with
    a rectangular window; the signal is then low-passed and decimated by 2 (`resample`, scale=True)
    while the hop is even; responses are divided by sqrt(filter length) (librosa's scale=True).
    Differences from librosa: the 2x decimator is a Kaiser-windowed sinc instead of soxr_hq, and
    librosa's optional early downsampling is not done (it is skipped for the usual hops anyway).
    Tuning is fixed (librosa.cqt's tuning=0.0).

    Args:
      sample_rate: Hz. hop_length: samples. fmin: lowest centre frequency, Hz. n_bins, bins_per_octave.
      filter_scale: filter length factor (librosa). sparsity: FFT-basis sparsification quantile
        (librosa's default 0.01; 0 = exact filters). pad_mode: STFT padding ("constant" as
        librosa.cqt). power: 1 -> magnitude, 2 -> power.
    Raises:
      ValueError: highest filter cut-off above Nyquist (too many bins or fmin too high), fmin <= 0,
        n_bins < 2, and as `stft`.
    """
    x = _check_wave(x)
    sr = _check_sr(sample_rate)
    hop_length = _check_pos_int(hop_length, "hop_length")
    n_bins = _check_pos_int(n_bins, "n_bins")
    bins_per_octave = _check_pos_int(bins_per_octave, "bins_per_octave")
    if n_bins < 2:
        raise ValueError(f"n_bins: expected >= 2, got {n_bins}")
    if not fmin > 0:
        raise ValueError(f"fmin: expected > 0 Hz, got {fmin!r}")
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity: expected 0 <= sparsity < 1, got {sparsity!r}")
    freqs = cqt_frequencies(n_bins, fmin=fmin, bins_per_octave=bins_per_octave)
    lengths_full, cutoff = _cqt_lengths(freqs, sr, filter_scale)
    if cutoff > sr / 2:
        raise ValueError(
            f"n_bins/fmin: highest CQT filter reaches {cutoff:.1f} Hz > Nyquist {sr / 2} Hz; "
            "reduce n_bins or fmin"
        )
    n_frames = 1 + x.shape[-1] // hop_length
    n_octaves = -(-n_bins // bins_per_octave)
    n_filters = min(bins_per_octave, n_bins)
    my_x, my_sr, my_hop = x, sr, hop_length
    responses = []
    for i in range(n_octaves):
        hi_bin = n_bins - n_filters * i
        lo_bin = max(0, hi_bin - n_filters)
        f_oct = freqs[lo_bin:hi_bin]
        # Lengths at this octave's rate; the relative bandwidth uses all bins (as librosa).
        len_oct = lengths_full[lo_bin:hi_bin] * (my_sr / sr)
        basis, n_fft, c0, c1 = _cqt_octave_basis(my_sr, f_oct, len_oct, sparsity)
        basis = basis * math.sqrt(sr / my_sr)
        z = stft(my_x, n_fft=n_fft, hop_length=my_hop, window="ones", pad_mode=pad_mode)
        z = z[..., :n_frames, c0:c1]
        resp = jnp.matmul(z, jnp.asarray(basis, z.dtype), precision=jax.lax.Precision.HIGHEST)
        responses.append(resp)
        if my_hop % 2 == 0 and i + 1 < n_octaves:
            my_hop //= 2
            my_sr /= 2.0
            # "best" quality: "fast" (16 zero crossings) was no faster here and raised the
            # difference to librosa from ~1e-3 to ~3e-2 of full scale (stop-band leakage).
            my_x = resample(my_x, 2, 1, scale=True)
    v = jnp.concatenate(responses[::-1], axis=-1)  # low -> high bins
    v = v * jnp.asarray(1.0 / np.sqrt(lengths_full), dtype=jnp.real(v).dtype)
    return _magnitude_power(v, float(power))


def log_cqt(
    x: jax.Array,
    *,
    sample_rate: float,
    hop_length: int = 512,
    fmin: float = 32.703195662574764,
    n_bins: int = 84,
    bins_per_octave: int = 12,
    filter_scale: float = 1.0,
    sparsity: float = 0.01,
    pad_mode: str = "constant",
    ref: float | str = 1.0,
    amin: float = 1e-5,
    top_db: float | None = 80.0,
) -> jax.Array:
    """Log-CQT in dB: `librosa.amplitude_to_db(|cqt|, ref=, amin=, top_db=)`, [..., N] -> [..., T, n_bins].

    20 log10(max(amin, |C|) / ref) floored at max - top_db per example. Computed from the CQT power
    (no square root, so the gradient is finite at silence). Raises as `cqt` and `power_to_db`.
    """
    p = cqt(x, sample_rate=sample_rate, hop_length=hop_length, fmin=fmin, n_bins=n_bins,
            bins_per_octave=bins_per_octave, filter_scale=filter_scale, sparsity=sparsity,
            pad_mode=pad_mode, power=2.0)
    ref2 = ref if isinstance(ref, str) else float(ref) ** 2
    return power_to_db(p, ref=ref2, amin=float(amin) ** 2, top_db=top_db)


# ----------------------------------------------------------------------------------------------
# Config entry point
# ----------------------------------------------------------------------------------------------


def _apply_log(s: jax.Array, log: str | None, *, ref: float | str, amin: float,
               top_db: float | None, eps: float) -> jax.Array:
    if log is None:
        return s
    if log == "db":
        return power_to_db(s, ref=ref, amin=amin, top_db=top_db)
    if log == "log_eps":
        if not eps > 0:
            raise ValueError(f"eps: expected > 0, got {eps!r}")
        return jnp.log(s + eps)
    raise ValueError(f"log: expected None, 'db' or 'log_eps', got {log!r}")


def _fe_waveform(x: jax.Array, *, sample_rate: float | None = None) -> jax.Array:
    """[..., N] -> [..., N, 1]: the raw waveform as a one-channel feature sequence."""
    del sample_rate
    return _check_wave(x)[..., None]


def _fe_stft(x: jax.Array, *, sample_rate: float | None = None, n_fft: int = 512,
             win_length: int | None = None, hop_length: int | None = None,
             window: str | np.ndarray = "hann", center: bool = True, pad_mode: str = "constant",
             power: float = 2.0, log: str | None = "db", ref: float | str = 1.0,
             amin: float = 1e-10, top_db: float | None = 80.0, eps: float = 1e-6) -> jax.Array:
    """Linear-frequency (log) spectrogram [..., T, n_fft // 2 + 1]; log=None|"db"|"log_eps"."""
    del sample_rate
    s = spectrogram(x, n_fft=n_fft, win_length=win_length, hop_length=hop_length, window=window,
                    center=center, pad_mode=pad_mode, power=power)
    if log == "db" and power != 2.0:
        # power_to_db expects power; |X|**p in dB is (10 * 2 / p) log10 -> rescale.
        return power_to_db(s ** (2.0 / power), ref=ref, amin=amin, top_db=top_db)
    return _apply_log(s, log, ref=ref, amin=amin, top_db=top_db, eps=eps)


def _fe_mel(x: jax.Array, **kw: Any) -> jax.Array:
    return mel_spectrogram(x, **kw)


def _fe_mfcc(x: jax.Array, *, deltas_order: int = 0, delta_width: int = 9, **kw: Any) -> jax.Array:
    """MFCC, optionally with delta (and delta-delta...) features concatenated on F."""
    m = mfcc(x, **kw)
    feats = [m] + [deltas(m, width=delta_width, order=o) for o in range(1, deltas_order + 1)]
    return jnp.concatenate(feats, axis=-1) if len(feats) > 1 else m


def _signature_params(fn: Callable[..., Any]) -> tuple[str, ...]:
    return tuple(p.name for p in inspect.signature(fn).parameters.values()
                 if p.kind == inspect.Parameter.KEYWORD_ONLY)


# name -> (function, valid parameter names). Filled after all front-ends are defined.
_FRONTENDS: dict[str, tuple[Callable[..., jax.Array], tuple[str, ...]]] = {}


def _register() -> None:
    mel_params = _signature_params(mel_spectrogram)
    _FRONTENDS.update({
        "waveform": (_fe_waveform, ("sample_rate",)),
        "stft": (_fe_stft, _signature_params(_fe_stft)),
        "mel": (_fe_mel, mel_params),
        "logmel": (log_mel, _signature_params(log_mel)),
        "mfcc": (_fe_mfcc, _signature_params(mfcc) + ("deltas_order", "delta_width")),
    })
    if "cqt" in globals():
        _FRONTENDS["cqt"] = (cqt, _signature_params(cqt))
        _FRONTENDS["logcqt"] = (log_cqt, _signature_params(log_cqt))


def make_frontend(cfg: Mapping[str, Any] | str) -> Callable[[jax.Array], jax.Array]:
    """Build a front-end from a config: ``fn(wave [B, N] float) -> features [B, T, F]``.

    Args:
      cfg: a Mapping or ml_collections.ConfigDict with key `name` (one of `FRONTEND_NAMES`:
        "waveform", "stft", "mel", "logmel", "mfcc", "cqt", "logcqt") plus that front-end's
        keyword parameters (units as in the functions: sample_rate Hz, n_fft / win_length /
        hop_length samples, fmin / fmax Hz, top_db dB, ...), or a preset name from `PRESETS`, or
        a mapping {"preset": "<name>", **overrides}.
    Returns:
      A pure function, safe to call inside `jax.jit` (parameters are closed over as static values).
    Raises:
      ValueError: unknown name or preset (lists the valid ones), unknown parameter (lists the
        valid ones for that front-end); invalid values raise on the first call (at trace time).
    """
    if isinstance(cfg, str):
        cfg = {"preset": cfg}
    if hasattr(cfg, "to_dict"):
        cfg = cfg.to_dict()  # ml_collections.ConfigDict
    if not isinstance(cfg, Mapping):
        raise ValueError(f"cfg: expected a Mapping/ConfigDict with key 'name' or a preset name, got {type(cfg).__name__}")
    params = dict(cfg)
    if "preset" in params:
        preset = params.pop("preset")
        if preset not in PRESETS:
            raise ValueError(f"preset: unknown preset {preset!r}; valid presets: {sorted(PRESETS)}")
        params = {**PRESETS[preset], **params}
    if "name" not in params:
        raise ValueError(f"name: missing; expected one of {FRONTEND_NAMES} (or 'preset': one of {sorted(PRESETS)})")
    name = params.pop("name")
    if name not in _FRONTENDS:
        if name in PRESETS:
            return make_frontend({"preset": name, **params})
        raise ValueError(f"name: unknown front-end {name!r}; valid names: {FRONTEND_NAMES}")
    fn, valid = _FRONTENDS[name]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(f"front-end {name!r}: unknown parameter(s) {unknown}; valid parameters: {sorted(valid)}")
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}

    def frontend(wave: jax.Array) -> jax.Array:
        return fn(wave, **params)

    frontend.__name__ = f"frontend_{name}"
    frontend.__doc__ = f"{name} front-end with {params}: wave [B, N] -> features [B, T, F]."
    return frontend


# Named presets (plain dicts so configs can copy/override them). Windows/hops in samples.
PRESETS: dict[str, dict[str, Any]] = {
    # FSDD (8 kHz spoken digits): 25 ms window, 10 ms hop, 40 mels 20 Hz - 4 kHz, dB.
    "logmel40_8k": dict(name="logmel", sample_rate=8000, n_fft=256, win_length=200, hop_length=80,
                        n_mels=40, fmin=20.0, fmax=4000.0, log="db"),
    # Speech Commands (16 kHz): 30 ms window, 10 ms hop, 40 mels 20 Hz - 7.6 kHz (TF KWS recipe).
    "logmel40_16k": dict(name="logmel", sample_rate=16000, n_fft=512, win_length=480,
                         hop_length=160, n_mels=40, fmin=20.0, fmax=7600.0, log="db"),
    # IUSP / DCASE-style (16 kHz): 25 ms window, 10 ms hop, 64 mels 125 - 7500 Hz, dB.
    "logmel64_16k": dict(name="logmel", sample_rate=16000, n_fft=512, win_length=400,
                         hop_length=160, n_mels=64, fmin=125.0, fmax=7500.0, log="db"),
    # EAsT on OpenMIC (PaSST-style input): 32 kHz, n_fft 1024, 25 ms window, 10 ms hop,
    # 128 mels up to 16 kHz, natural log(x + 1e-5).
    "logmel128_32k_east": dict(name="logmel", sample_rate=32000, n_fft=1024, win_length=800,
                               hop_length=320, n_mels=128, fmin=0.0, fmax=16000.0,
                               log="log_eps", eps=1e-5),
    # EAsT on MagnaTagATune: 16 kHz, 96 mels up to 8 kHz (n_fft 512, hop 256 as in musicnn-style
    # MTAT pipelines; an assumption where the paper gives no STFT sizes), log(x + 1e-5).
    "logmel96_16k_east": dict(name="logmel", sample_rate=16000, n_fft=512, win_length=512,
                              hop_length=256, n_mels=96, fmin=0.0, fmax=8000.0,
                              log="log_eps", eps=1e-5),
    # 40 MFCCs from 40 mels (16 kHz, 25 ms / 10 ms), as in DML-style STFT/MFCC peer pairs.
    "mfcc40_16k": dict(name="mfcc", sample_rate=16000, n_fft=512, win_length=400, hop_length=160,
                       n_mels=40, n_mfcc=40, fmin=20.0, fmax=8000.0),
    # Linear-frequency log-power spectrogram (16 kHz, 25 ms / 10 ms, 257 bins), dB.
    "stft_16k": dict(name="stft", sample_rate=16000, n_fft=512, win_length=400, hop_length=160,
                     power=2.0, log="db"),
    # Log-CQT (16 kHz): 84 bins (7 octaves from C1 = 32.70 Hz), 12 bins/octave, 16 ms hop, dB.
    "cqt_16k": dict(name="logcqt", sample_rate=16000, hop_length=256, fmin=32.703195662574764,
                    n_bins=84, bins_per_octave=12),
    # Frame-level KD students (16 kHz, 25 ms / 10 ms, 64 mels 50 Hz - 8 kHz, log(x + 1e-6)).
    "logmel_frami": dict(name="logmel", sample_rate=16000, n_fft=512, win_length=400,
                         hop_length=160, n_mels=64, fmin=50.0, fmax=8000.0, log="log_eps",
                         eps=1e-6),
}


# ----------------------------------------------------------------------------------------------
# Registry (kept last so every front-end above is defined)
# ----------------------------------------------------------------------------------------------
_register()
FRONTEND_NAMES: tuple[str, ...] = tuple(sorted(_FRONTENDS))
