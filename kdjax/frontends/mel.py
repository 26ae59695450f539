"""Mel scale and cepstra: `hz_to_mel` / `mel_to_hz` / `mel_frequencies`, `mel_filterbank`,
`mel_spectrogram`, `power_to_db` (dB), `log_mel`, `dct_matrix` (orthonormal DCT-II), `mfcc` and
`deltas`.

Layout: ``wave [..., N] -> [..., T, n_mels | n_mfcc]``; frequencies in Hz, levels in dB.
Numerics follow librosa 0.11 (`librosa.filters.mel`, `librosa.feature.melspectrogram`,
`librosa.power_to_db`, `librosa.feature.mfcc`, `librosa.feature.delta`).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from kdjax.frontends._checks import _check_pos_int, _check_sr, _check_wave, _stft_params
from kdjax.frontends.stft import _check_impl, _in_chunks, _spectrogram, _stft_row_bytes

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
    stft_impl: str = "rfft",
    framing: str = "gather",
    dft_dtype: str | None = None,
) -> jax.Array:
    """Mel spectrogram: [..., N] -> [..., T, n_mels], |STFT|**power projected on a mel filterbank.

    Matches `librosa.feature.melspectrogram(y=x, sr=sample_rate, ...)` (transposed). The projection
    is one matmul. Units: power=2 gives power (amplitude^2 summed over bins). stft_impl /
    framing / dft_dtype as `kdjax.frontends.stft` (with "dft" only the FFT bins the filterbank
    uses are computed). Raises as `spectrogram` and `mel_filterbank`.
    """
    if not power > 0:
        raise ValueError(f"power: expected > 0 (1 = magnitude, 2 = power), got {power!r}")
    x = _check_wave(x)
    n_fft, win_length, hop_length = _stft_params(n_fft, win_length, hop_length)
    _check_impl(stft_impl, framing, dft_dtype)
    kw = dict(n_fft=n_fft, win_length=win_length, hop_length=hop_length, window=window, center=center,
              pad_mode=pad_mode, framing=framing, stft_impl=stft_impl, dft_dtype=dft_dtype)
    fb = mel_filterbank(sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax,
                        htk=htk, norm=norm, dtype=x.dtype)
    # Project only the FFT bins some filter touches (fmin/fmax leave zero rows): the slice fuses
    # into the |STFT|**power computation, the dropped terms are exact zeros.
    nz = np.flatnonzero(np.any(_mel_filterbank_np(_check_sr(sample_rate), int(n_fft), int(n_mels), float(fmin),
                                                  float(sample_rate) / 2.0 if fmax is None else float(fmax),
                                                  bool(htk), norm) != 0, axis=1))
    b0, b1 = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, fb.shape[0])

    def mel(a: jax.Array) -> jax.Array:
        s = _spectrogram(a, power=float(power), bins=(b0, b1), **kw)  # [..., T, b1 - b0]
        return jnp.matmul(s, fb[b0:b1], precision=jax.lax.Precision.HIGHEST)

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
    stft_impl: str = "rfft",
    framing: str = "gather",
    dft_dtype: str | None = None,
) -> jax.Array:
    """Log-mel spectrogram: [..., N] -> [..., T, n_mels].

    log="db": `power_to_db(mel, ref=, amin=, top_db=)` in dB (librosa's
    `power_to_db(melspectrogram(...))`); log="log_eps": natural log(mel + eps) (as in EAsT/PANNs
    style pipelines, e.g. log(x + 1e-5)). stft_impl / framing / dft_dtype as `mel_spectrogram`.
    Raises ValueError for an unknown `log`, eps <= 0 and as `mel_spectrogram` / `power_to_db`.
    """
    if log not in ("db", "log_eps"):
        raise ValueError(f"log: expected 'db' or 'log_eps', got {log!r}")
    if log == "log_eps" and not eps > 0:
        raise ValueError(f"eps: expected > 0, got {eps!r}")
    m = mel_spectrogram(x, sample_rate=sample_rate, n_fft=n_fft, win_length=win_length,
                        hop_length=hop_length, window=window, center=center, pad_mode=pad_mode,
                        power=power, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm,
                        stft_impl=stft_impl, framing=framing, dft_dtype=dft_dtype)
    if log == "db":
        return power_to_db(m, ref=ref, amin=amin, top_db=top_db)
    return jnp.log(m + eps)


# ----------------------------------------------------------------------------------------------
# MFCC and deltas
# ----------------------------------------------------------------------------------------------


def dct_matrix(n_in: int, n_out: int, lifter: float = 0.0) -> np.ndarray:
    """Orthonormal DCT-II as a projection matrix [n_in, n_out], optionally liftered.

    ``feats [..., n_in] @ dct_matrix(n_in, n_out) -> [..., n_out]`` equals the first n_out
    coefficients of `scipy.fft.dct(feats, type=2, norm="ortho", axis=-1)`:
    ``D[n, k] = sqrt(2 / n_in) cos(pi k (2n + 1) / (2 n_in))``, column 0 times sqrt(1/2), so the
    columns are orthonormal. With lifter > 0, column k is multiplied by
    ``1 + (lifter / 2) sin(pi (k + 1) / lifter)`` (librosa.feature.mfcc's sinusoidal liftering).
    Used by `mfcc` (over the mel axis) and as a smooth basis elsewhere (kdjax.train.invert).

    Args:
      n_in: input length (e.g. mel bands). n_out: number of coefficients, 1 <= n_out <= n_in.
      lifter: liftering factor >= 0 (0: none).
    Returns:
      float64 NumPy array [n_in, n_out] (a fresh copy; cast at use).
    Raises:
      ValueError: non-positive n_in/n_out, n_out > n_in, or lifter < 0.
    """
    n_in = _check_pos_int(n_in, "n_in")
    n_out = _check_pos_int(n_out, "n_out")
    if n_out > n_in:
        raise ValueError(f"n_out: expected <= n_in = {n_in}, got {n_out}")
    if not lifter >= 0:
        raise ValueError(f"lifter: expected >= 0 (0 = none), got {lifter!r}")
    return _dct_matrix(n_in, n_out, float(lifter)).copy()


@functools.lru_cache(maxsize=64)
def _dct_matrix(n_in: int, n_out: int, lifter: float) -> np.ndarray:
    """`dct_matrix` without checks, cached (callers must not modify the result)."""
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
    stft_impl: str = "rfft",
    framing: str = "gather",
    dft_dtype: str | None = None,
) -> jax.Array:
    """Mel-frequency cepstral coefficients: [..., N] -> [..., T, n_mfcc].

    DCT-II (orthonormal) over the mel axis of the dB log-mel spectrogram, first n_mfcc
    coefficients, optional sinusoidal liftering (lifter > 0; `1 + lifter/2 sin(pi k / lifter)`).
    Matches `librosa.feature.mfcc(y=x, sr=, n_mfcc=, dct_type=2, norm="ortho", lifter=, ...)`
    (transposed; the top_db floor is per example, see `power_to_db`). Units: dB-cepstra.
    stft_impl / framing / dft_dtype as `mel_spectrogram`.

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
                ref=ref, amin=amin, top_db=top_db, stft_impl=stft_impl, framing=framing,
                dft_dtype=dft_dtype)
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
    # lax.slice_in_dim, not feats[..., a:b]: with a symbolic (jax.export) batch size jnp
    # indexing lowers to a gather; the values are the same slices.
    n = t - width + 1
    core = sum(float(w[i]) * jax.lax.slice_in_dim(feats, i, n + i, axis=-1)
               for i in range(width) if w[i] != 0.0)
    core = jnp.asarray(core, dtype=feats.dtype)
    out = jnp.concatenate([jnp.repeat(jax.lax.slice_in_dim(core, 0, 1, axis=-1), h, axis=-1), core,
                           jnp.repeat(jax.lax.slice_in_dim(core, n - 1, n, axis=-1), h, axis=-1)],
                          axis=-1)
    return jnp.moveaxis(out, -1, axis)
