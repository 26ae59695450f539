"""Constant-Q transform: `cqt_frequencies`, `cqt` (magnitude / power) and `log_cqt` (dB).

``wave [..., N] -> [..., T, n_bins]``, T = 1 + N // hop_length; frequencies in Hz. Algorithm of
`librosa.cqt` 0.11 (Schoerkhuber & Klapuri 2010), built on `stft`, `resample` and `power_to_db`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from kdjax.frontends._checks import _check_pos_int, _check_sr, _check_wave
from kdjax.frontends.mel import power_to_db
from kdjax.frontends.resample import resample
from kdjax.frontends.stft import _magnitude_power, stft

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
    for i, (ilen, f) in enumerate(zip(lengths, freqs, strict=True)):
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

