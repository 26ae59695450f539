"""Data augmentation with explicit PRNG keys: SpecAugment masks, mixup, random gain, time shift.

All functions are pure, jit-able and batched over the leading axis B; every random draw comes from
the `key` argument (`jax.random.split` it per call site). Features use the front-end layout
[B, T, F] (time frames first, then frequency); waveforms are [B, N] (samples).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["mixup", "random_gain", "spec_augment", "spec_augment_config", "time_shift"]

# The fields of a train config's `spec_augment` block (kdjax.train.forward.augment_features).
SPEC_AUGMENT_FIELDS = ("freq_masks", "freq_width", "time_masks", "time_width", "mask_value")


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


def spec_augment_config(block: Any) -> dict[str, Any] | None:
    """A train config's `spec_augment` block checked and mapped to `spec_augment`'s keywords.

    `spec_augment = dict(freq_masks=2, freq_width=8, time_masks=2, time_width=20,
    mask_value="mean")`: per example, `freq_masks` bands of width ~ U{0..freq_width} mel bins
    and `time_masks` bands of width ~ U{0..time_width} frames (Park et al. 2019, arXiv
    1904.08779, section 2: the paper's m_F, F, m_T, T; no time warping), filled with
    `mask_value` (default "mean": the example's mean, as the paper's zero on mean-normalised
    log-mels). Missing counts/widths are 0 (no mask of that kind).

    Args:
      block: the config's `spec_augment` (a dict / ConfigDict, or None / empty: off).

    Returns:
      `spec_augment` keywords `{num_freq_masks, max_freq_width, num_time_masks, max_time_width,
      mask_value}`, or None when the block is unset or masks nothing.

    Raises:
      ValueError: an unknown field, a count/width that is not a non-negative integer, or a
        mask_value that is neither a number nor "mean" (names the field).
    """
    if not block:
        return None
    b = dict(block)
    unknown = set(b) - set(SPEC_AUGMENT_FIELDS)
    if unknown:
        raise ValueError(f"spec_augment: unknown field(s) {sorted(unknown)}; expected some of "
                         f"{list(SPEC_AUGMENT_FIELDS)}")
    out: dict[str, Any] = {}
    for field, kw in (("freq_masks", "num_freq_masks"), ("freq_width", "max_freq_width"),
                      ("time_masks", "num_time_masks"), ("time_width", "max_time_width")):
        v = b.get(field, 0)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"spec_augment.{field}={v!r}: expected a non-negative integer")
        out[kw] = v
    mv = b.get("mask_value", "mean")
    if isinstance(mv, bool) or (isinstance(mv, str) and mv != "mean") or not isinstance(
            mv, (str, int, float)):
        raise ValueError(f"spec_augment.mask_value={mv!r}: expected a number or 'mean'")
    out["mask_value"] = mv if isinstance(mv, str) else float(mv)
    if not (out["num_freq_masks"] and out["max_freq_width"]) and not (
            out["num_time_masks"] and out["max_time_width"]):
        return None
    return out


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
