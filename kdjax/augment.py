"""Data augmentation with explicit PRNG keys: SpecAugment masks, mixup, random gain, time shift.

All functions are pure, jit-able and batched over the leading axis B; every random draw comes from
the `key` argument (`jax.random.split` it per call site). Features use the front-end layout
[B, T, F] (time frames first, then frequency); waveforms are [B, N] (samples).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["mixup", "random_gain", "spec_augment", "time_shift"]


def _masks(key: jax.Array, batch: int, size: int, num: int, max_width: int) -> jax.Array:
    """[B, size] bool: union of `num` intervals per example, widths ~ U{0..max_width}, starts ~ U{0..size-w}."""
    if num == 0 or max_width == 0:
        return jnp.zeros((batch, size), bool)
    kw, ks = jax.random.split(key)
    width = jax.random.randint(kw, (batch, num), 0, max_width + 1)
    width = jnp.minimum(width, size)
    start = (jax.random.uniform(ks, (batch, num)) * (size - width + 1)).astype(jnp.int32)
    pos = jnp.arange(size)
    inside = (pos[None, None, :] >= start[..., None]) & (pos[None, None, :] < (start + width)[..., None])
    return jnp.any(inside, axis=1)


def spec_augment(
    key: jax.Array,
    x: jax.Array,
    *,
    num_time_masks: int = 2,
    max_time_width: int = 20,
    num_freq_masks: int = 2,
    max_freq_width: int = 8,
    mask_value: float | str = 0.0,
) -> jax.Array:
    """SpecAugment time and frequency masking (Park et al. 2019, Interspeech; no time warping).

    Shapes: x [B, T, F] -> [B, T, F]. Each example gets `num_time_masks` masks of width
    ~ U{0, ..., max_time_width} frames and `num_freq_masks` of width ~ U{0, ..., max_freq_width}
    bins (as torchaudio's TimeMasking/FrequencyMasking with iid_masks=True).

    Args:
      key: PRNG key. mask_value: fill value (e.g. 0.0 for normalised features, or the dB floor),
        or "mean" to fill with the example's mean.
    Raises:
      ValueError: rank != 3, negative counts/widths, unknown string mask_value.
    """
    x = jnp.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"x: expected rank 3 [B, T, F], got shape {x.shape}")
    for name, v in (("num_time_masks", num_time_masks), ("max_time_width", max_time_width),
                    ("num_freq_masks", num_freq_masks), ("max_freq_width", max_freq_width)):
        if not isinstance(v, int) or v < 0:
            raise ValueError(f"{name}: expected a non-negative integer, got {v!r}")
    if isinstance(mask_value, str):
        if mask_value != "mean":
            raise ValueError(f"mask_value: expected a number or 'mean', got {mask_value!r}")
        fill = jnp.mean(x, axis=(1, 2), keepdims=True)
    else:
        fill = jnp.asarray(mask_value, x.dtype)
    b, t, f = x.shape
    kt, kf = jax.random.split(key)
    tm = _masks(kt, b, t, num_time_masks, max_time_width)  # [B, T]
    fm = _masks(kf, b, f, num_freq_masks, max_freq_width)  # [B, F]
    mask = tm[:, :, None] | fm[:, None, :]
    return jnp.where(mask, fill, x)


def mixup(key: jax.Array, x: jax.Array, labels: jax.Array, *, alpha: float = 0.2
          ) -> tuple[jax.Array, jax.Array]:
    """mixup (Zhang et al. 2018, ICLR): convex combinations of the batch with a shuffled copy.

    lam ~ Beta(alpha, alpha) per example; x' = lam x + (1 - lam) x[perm],
    y' = lam y + (1 - lam) y[perm]. Shapes: x [B, ...] (waveforms or features), labels [B, C]
    probabilities (one-hot / soft / multi-hot) -> same shapes.
    Raises: ValueError for alpha <= 0, labels not [B, C] or batch sizes that differ.
    """
    x, labels = jnp.asarray(x), jnp.asarray(labels)
    if not alpha > 0:
        raise ValueError(f"alpha: expected > 0, got {alpha!r}")
    if labels.ndim != 2 or labels.shape[0] != x.shape[0]:
        raise ValueError(f"labels: expected probabilities [B={x.shape[0]}, C], got shape {labels.shape}")
    kl, kp = jax.random.split(key)
    b = x.shape[0]
    lam = jax.random.beta(kl, alpha, alpha, (b,)).astype(x.dtype)
    perm = jax.random.permutation(kp, b)
    lx = lam.reshape((b,) + (1,) * (x.ndim - 1))
    mixed = lx * x + (1 - lx) * x[perm]
    ll = lam.astype(labels.dtype)[:, None]
    return mixed, ll * labels + (1 - ll) * labels[perm]


def random_gain(key: jax.Array, wave: jax.Array, *, min_db: float = -6.0, max_db: float = 6.0) -> jax.Array:
    """Scale each waveform by a gain ~ U[min_db, max_db] dB (amplitude 10 ** (g / 20)). [B, N] -> [B, N].

    Raises: ValueError if min_db > max_db.
    """
    if min_db > max_db:
        raise ValueError(f"min_db: expected <= max_db = {max_db}, got {min_db}")
    wave = jnp.asarray(wave)
    g = jax.random.uniform(key, (wave.shape[0],), minval=min_db, maxval=max_db)
    return wave * (10.0 ** (g / 20.0)).astype(wave.dtype).reshape((-1,) + (1,) * (wave.ndim - 1))


def time_shift(key: jax.Array, wave: jax.Array, *, max_shift: int, roll: bool = False) -> jax.Array:
    """Shift each waveform by s ~ U{-max_shift..max_shift} samples along the last axis. [B, N] -> [B, N].

    roll=True wraps around (circular); otherwise vacated samples are zero.
    Raises: ValueError for max_shift < 0.
    """
    if not isinstance(max_shift, int) or max_shift < 0:
        raise ValueError(f"max_shift: expected a non-negative integer (samples), got {max_shift!r}")
    wave = jnp.asarray(wave)
    n = wave.shape[-1]
    s = jax.random.randint(key, (wave.shape[0],), -max_shift, max_shift + 1)
    idx = jnp.arange(n)[None, :] - s[:, None]  # out[i] = in[i - s]
    if roll:
        return jnp.take_along_axis(wave, idx % n, axis=-1)
    valid = (idx >= 0) & (idx < n)
    return jnp.where(valid, jnp.take_along_axis(wave, jnp.clip(idx, 0, n - 1), axis=-1), 0.0)
