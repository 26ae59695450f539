"""Windows, framing and the short-time Fourier transform: `get_window`, `num_frames`, `stft`,
`spectrogram` (magnitude / power), and the row chunking (`_in_chunks`) the STFT-based front-ends
share.

Layout: ``wave [..., N] -> [..., T, n_fft // 2 + 1]`` (time frames first); lengths in samples.
Numerics follow `librosa.stft` 0.11 (see tests/test_frontends.py).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from kdjax.frontends._checks import _check_pos_int, _check_wave, _stft_params

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

    Only static slices, reshapes and one concatenate (no gather): `framing="slices"`, for export
    to formats without a general gather (ONNX, TFLite). Slower on XLA:CPU, see `_frame`.
    """
    n = x.shape[-1]
    t = 1 + (n - frame_length) // hop_length
    k = -(-frame_length // hop_length)  # blocks per frame
    need = (t - 1 + k) * hop_length
    if need > n:
        x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, need - n)])
    # lax.slice_in_dim, not x[..., a:b]: with a symbolic (jax.export) batch size jnp indexing
    # lowers to a gather.
    blocks = jax.lax.slice_in_dim(x, 0, need, axis=-1).reshape(*x.shape[:-1], t - 1 + k, hop_length)
    frames = jnp.concatenate([jax.lax.slice_in_dim(blocks, i, i + t, axis=-2) for i in range(k)],
                             axis=-1)
    return jax.lax.slice_in_dim(frames, 0, frame_length, axis=-1)


def _frame_gather(x: jax.Array, frame_length: int, hop_length: int) -> jax.Array:
    """Same as `_frame` with an element-index gather `x[..., idx]`, idx [T, frame_length] a
    constant (`framing="index"`; ONNX `Gather` on the last axis)."""
    t = 1 + (x.shape[-1] - frame_length) // hop_length
    idx = hop_length * np.arange(t)[:, None] + np.arange(frame_length)[None, :]
    return x[..., idx]


# framing= name -> [..., N] -> [..., T, frame_length] (all three give identical frames).
_FRAMINGS: dict[str, Callable[[jax.Array, int, int], jax.Array]] = {
    "gather": _frame, "index": _frame_gather, "slices": _frame_slices}
FRAMINGS: tuple[str, ...] = tuple(_FRAMINGS)
STFT_IMPLS: tuple[str, ...] = ("rfft", "dft")
_DFT_DTYPES = (None, "float16", "bfloat16", "float32", "float64")


def _check_impl(stft_impl: str, framing: str, dft_dtype: str | None) -> None:
    """Validate the STFT implementation options (see `stft`)."""
    if stft_impl not in STFT_IMPLS:
        raise ValueError(f"stft_impl: expected one of {STFT_IMPLS}, got {stft_impl!r}")
    if framing not in _FRAMINGS:
        raise ValueError(f"framing: expected one of {FRAMINGS}, got {framing!r}")
    if dft_dtype not in _DFT_DTYPES:
        raise ValueError(f"dft_dtype: expected one of {_DFT_DTYPES}, got {dft_dtype!r}")
    if dft_dtype is not None and stft_impl != "dft":
        raise ValueError(f"dft_dtype={dft_dtype!r}: only used with stft_impl='dft', got "
                         f"stft_impl={stft_impl!r}")


def stft(
    x: jax.Array,
    *,
    n_fft: int = 2048,
    win_length: int | None = None,
    hop_length: int | None = None,
    window: str | np.ndarray = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    stft_impl: str = "rfft",
    framing: str = "gather",
    dft_dtype: str | None = None,
) -> jax.Array:
    """Short-time Fourier transform, rfft of windowed frames (or a DFT matmul, see stft_impl).

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
      stft_impl: "rfft" (default): `jnp.fft.rfft` of the windowed frames. "dft": the same
        transform as one real matmul of the frames with a precomputed windowed DFT basis
        (cos and -sin parts, [win_length, n_fft // 2 + 1] each: only the window's support rows),
        no FFT and no complex intermediate (for ONNX / TFLite export, where FFT and complex
        dtypes are missing; the power front-ends never form a complex array). Equal to "rfft"
        to float32 round-off (tests/test_frontends_export.py states the tolerance).
      framing: how frames are cut: "gather" (default: one slab `lax.gather`, fastest on
        XLA:CPU), "index" (element-index gather `x[..., idx]`), "slices" (static slices and a
        concatenate, no gather op). All three give identical frames.
      dft_dtype: storage dtype of the DFT basis constant with stft_impl="dft": None (the input's
        dtype) or "float16" / "bfloat16" / "float32" / "float64"; the basis is cast to the
        input's dtype before the matmul (e.g. "float16" halves an exported model's constant,
        compute stays float32).
    Returns:
      complex64 (complex128 for float64 input) [..., T, n_fft // 2 + 1].
    Raises:
      ValueError: non-floating x, win_length > n_fft, non-positive sizes, unknown pad_mode/window,
        a clip too short to give one frame with center=False, unknown stft_impl / framing /
        dft_dtype, or dft_dtype with stft_impl="rfft".
    """
    x = _check_wave(x)
    n_fft, win_length, hop_length = _stft_params(n_fft, win_length, hop_length)
    _check_impl(stft_impl, framing, dft_dtype)
    kw = dict(n_fft=n_fft, win_length=win_length, hop_length=hop_length, window=window, center=center,
              pad_mode=pad_mode, framing=framing)
    if stft_impl == "dft":
        def fn(a: jax.Array) -> jax.Array:
            return jax.lax.complex(*_stft_dft(a, dft_dtype=dft_dtype, **kw))
    else:
        def fn(a: jax.Array) -> jax.Array:
            return _stft(a, **kw)
    return _in_chunks(fn, x, _stft_row_bytes(x, n_fft, hop_length, center))


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
    independently (every STFT-based front-end here does). Differentiable. A symbolic
    (shape-polymorphic, `jax.export`) dimension cannot be compared with the chunk size, so such
    a batch is computed whole.
    """
    if any(jax.export.is_symbolic_dim(d) for d in x.shape):
        return fn(x)
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


def _pad_center(x: jax.Array, *, n_fft: int, center: bool, pad_mode: str) -> jax.Array:
    """x [..., N] padded by n_fft // 2 on both sides when `center`; checks pad_mode and length."""
    valid_pad = ("constant", "reflect", "edge", "symmetric", "wrap")
    if pad_mode not in valid_pad:
        raise ValueError(f"pad_mode: expected one of {valid_pad}, got {pad_mode!r}")
    if center:
        pad = [(0, 0)] * (x.ndim - 1) + [(n_fft // 2, n_fft // 2)]
        # jnp.pad reflects repeatedly when the pad is longer than the clip, like np.pad.
        x = jnp.pad(x, pad, mode=pad_mode)
    if x.shape[-1] < n_fft:
        raise ValueError(
            f"x: expected at least n_fft={n_fft} samples with center=False, got {x.shape[-1]}"
        )
    return x


def _stft(x: jax.Array, *, n_fft: int, win_length: int | None, hop_length: int | None,
          window: str | np.ndarray, center: bool, pad_mode: str, framing: str = "gather") -> jax.Array:
    """`stft` on the whole batch at once (no chunking); the public `stft` documents it."""
    x = _check_wave(x)
    n_fft, win_length, hop_length = _stft_params(n_fft, win_length, hop_length)
    w = get_window(window, win_length, n_fft)
    x = _pad_center(x, n_fft=n_fft, center=center, pad_mode=pad_mode)
    # Full n_fft frames times the zero-padded window, then an unpadded rfft. Framing only the
    # window's support and letting rfft(n=n_fft) zero-pad was measured ~1.3x slower on XLA:CPU
    # (the padding is a separate copy of the frames); the pad of `x` fuses into the gather.
    frames = _FRAMINGS[framing](x, n_fft, hop_length) * jnp.asarray(w, dtype=x.dtype)
    return jnp.fft.rfft(frames, axis=-1)


@functools.lru_cache(maxsize=32)
def _dft_basis_np(n_fft: int, lo: int, win: tuple[float, ...]) -> np.ndarray:
    """Windowed real DFT basis [len(win), 2 * (n_fft // 2 + 1)] float64: [cos | -sin] columns.

    Row r is sample n = lo + r of an n_fft frame (the window's support), weighted by win[r]:
    B[r, k] = win[r] cos(2 pi n k / n_fft), B[r, F + k] = -win[r] sin(2 pi n k / n_fft), so
    frames @ B = [Re, Im] of `np.fft.rfft(frames * window)`. The angle is reduced exactly
    ((n k) mod n_fft in integers) before the cosine; the sine is exactly 0 at k = 0 and n_fft / 2.
    """
    n_bins = n_fft // 2 + 1
    n = np.arange(lo, lo + len(win), dtype=np.int64)[:, None]
    k = np.arange(n_bins, dtype=np.int64)[None, :]
    ang = 2.0 * np.pi * ((n * k) % n_fft) / n_fft
    sin = np.sin(ang)
    sin[:, 0] = 0.0
    if n_fft % 2 == 0:
        sin[:, -1] = 0.0
    w = np.asarray(win, dtype=np.float64)[:, None]
    return np.concatenate([w * np.cos(ang), -w * sin], axis=1)


def _stft_dft(x: jax.Array, *, n_fft: int, win_length: int | None, hop_length: int | None,
              window: str | np.ndarray, center: bool, pad_mode: str, framing: str = "gather",
              dft_dtype: str | None = None, bins: tuple[int, int] | None = None
              ) -> tuple[jax.Array, jax.Array]:
    """(Re, Im) of `stft` [..., T, n_fft // 2 + 1] as one real matmul (stft_impl="dft").

    Frames cover only the window's support (win_length samples starting lpad =
    (n_fft - win_length) // 2 into each n_fft frame, where the zero-padded window is non-zero),
    times the windowed basis `_dft_basis_np` [win_length, 2F] at Precision.HIGHEST. `bins`
    (b0, b1): compute only FFT bins b0 <= k < b1 (the columns a mel filterbank uses).
    """
    x = _check_wave(x)
    n_fft, win_length, hop_length = _stft_params(n_fft, win_length, hop_length)
    w = get_window(window, win_length, n_fft)
    x = _pad_center(x, n_fft=n_fft, center=center, pad_mode=pad_mode)
    t = 1 + (x.shape[-1] - n_fft) // hop_length
    lo = (n_fft - win_length) // 2
    seg = jax.lax.slice_in_dim(x, lo, lo + (t - 1) * hop_length + win_length, axis=-1)
    frames = _FRAMINGS[framing](seg, win_length, hop_length)  # [..., T, win_length]
    basis = _dft_basis_np(n_fft, lo, tuple(w[lo : lo + win_length].tolist()))
    n_bins = n_fft // 2 + 1
    b0, b1 = (0, n_bins) if bins is None else bins
    basis = np.concatenate([basis[:, b0:b1], basis[:, n_bins + b0 : n_bins + b1]], axis=1)
    b = jnp.asarray(basis, dtype=dft_dtype or x.dtype).astype(x.dtype)
    y = jnp.matmul(frames, b, precision=jax.lax.Precision.HIGHEST)  # [..., T, 2 (b1 - b0)]
    nb = b1 - b0
    return jax.lax.slice_in_dim(y, 0, nb, axis=-1), jax.lax.slice_in_dim(y, nb, 2 * nb, axis=-1)


def _safe_sqrt(p: jax.Array) -> jax.Array:
    """sqrt(p) for p >= 0 with a zero (not NaN) gradient at p == 0 (silence)."""
    pos = p > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, p, 1.0)), 0.0)


def _safe_abs(z: jax.Array) -> jax.Array:
    """|z| with a zero (not NaN) gradient at z == 0 (silence)."""
    return _safe_sqrt(jnp.real(z) ** 2 + jnp.imag(z) ** 2)


def _magnitude_power(z: jax.Array, power: float) -> jax.Array:
    if power == 2.0:
        return jnp.real(z) ** 2 + jnp.imag(z) ** 2  # no sqrt: smooth everywhere
    if power == 1.0:
        return _safe_abs(z)
    return _safe_abs(z) ** power


def _power_from_parts(re: jax.Array, im: jax.Array, power: float) -> jax.Array:
    """`_magnitude_power` of re + i im without forming a complex array (stft_impl="dft")."""
    p = re ** 2 + im ** 2
    if power == 2.0:
        return p
    if power == 1.0:
        return _safe_sqrt(p)
    return _safe_sqrt(p) ** power


def _spectrogram(x: jax.Array, *, power: float, stft_impl: str = "rfft",
                 dft_dtype: str | None = None, bins: tuple[int, int] | None = None,
                 **kw: Any) -> jax.Array:
    """|STFT|**power of the whole batch (no chunking), by `stft_impl`; kw as `_stft`.

    bins (b0, b1): only FFT bins b0 <= k < b1 ([..., T, b1 - b0]; with "dft" only those are
    computed).
    """
    if stft_impl == "dft":
        return _power_from_parts(*_stft_dft(x, dft_dtype=dft_dtype, bins=bins, **kw), power)
    s = _magnitude_power(_stft(x, **kw), power)
    return s if bins is None else s[..., bins[0] : bins[1]]


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
    stft_impl: str = "rfft",
    framing: str = "gather",
    dft_dtype: str | None = None,
) -> jax.Array:
    """|STFT|**power: [..., N] -> [..., T, n_fft // 2 + 1] (power=1: magnitude, 2: power).

    Matches `np.abs(librosa.stft(...)) ** power` (librosa's `_spectrogram`). Gradient is finite at
    silence (|z| uses a safe square root). stft_impl / framing / dft_dtype as `stft` (with
    stft_impl="dft" no complex array is formed). Raises ValueError for power <= 0 and as `stft`.
    """
    if not power > 0:
        raise ValueError(f"power: expected > 0 (1 = magnitude, 2 = power), got {power!r}")
    x = _check_wave(x)
    n_fft, win_length, hop_length = _stft_params(n_fft, win_length, hop_length)
    _check_impl(stft_impl, framing, dft_dtype)
    kw = dict(n_fft=n_fft, win_length=win_length, hop_length=hop_length, window=window, center=center,
              pad_mode=pad_mode, framing=framing, stft_impl=stft_impl, dft_dtype=dft_dtype)
    return _in_chunks(lambda a: _spectrogram(a, power=float(power), **kw), x,
                      _stft_row_bytes(x, n_fft, hop_length, center))

