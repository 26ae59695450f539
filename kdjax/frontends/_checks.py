"""Argument checks shared by the front-end modules (private).

Shapes and parameters are static, so these run once at trace time and raise ValueError naming
the argument and what was expected.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


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

