"""Shared helpers for :mod:`kdjax.losses`: the one reduction (``masked_mean``) and shape checks.

Imports only jax and the Python standard library (see ``tests/losses/test_imports.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

Array = jax.Array


def _expand_mask(mask: Array, x: Array) -> Array:
    """Right-pads ``mask`` with unit axes so a ``[B]`` (or ``[B, T]``) mask broadcasts over ``x [B, ...]``."""
    mask = jnp.asarray(mask)
    if mask.ndim < x.ndim and tuple(mask.shape) == tuple(x.shape[: mask.ndim]):
        mask = mask.reshape(mask.shape + (1,) * (x.ndim - mask.ndim))
    try:
        return jnp.broadcast_to(mask, x.shape)
    except ValueError as e:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to x of shape {tuple(x.shape)}; "
            "expected a shape broadcastable to x, or x.shape[:k] (e.g. [B] for x [B, ...])"
        ) from e


def masked_mean(
    x: Array, mask: Array | None = None, axis: int | Sequence[int] | None = None
) -> Array:
    """Mean of ``x`` over the entries where ``mask`` is non-zero; the one reduction of kdjax.losses.

    Args:
      x: ``[...]`` values.
      mask: optional weights/mask, broadcastable to ``x``, or a prefix of ``x``'s shape
        (e.g. ``[B]`` for ``x [B, ...]``; it is right-padded with unit axes). Non-zero entries
        count with their value as weight (a 0/1 or bool mask gives a plain masked mean).
        Masked entries of ``x`` may hold anything, even NaN/inf: they are selected away with
        ``jnp.where`` before multiplying, so neither value nor gradient is contaminated.
      axis: axes to reduce (``None``: all).

    Returns:
      ``sum(mask * x, axis) / sum(mask, axis)``; where the mask sums to 0 (everything masked) the
      result is 0, not NaN.

    Raises:
      ValueError: if ``mask`` does not broadcast to ``x``.
    """
    x = jnp.asarray(x)
    if mask is None:
        return jnp.mean(x, axis=axis)
    m = _expand_mask(mask, x)
    keep = m != 0
    w = jnp.where(keep, m, 0).astype(x.dtype)
    num = jnp.sum(jnp.where(keep, x, 0) * w, axis=axis)
    den = jnp.sum(w, axis=axis)
    ok = den != 0
    return jnp.where(ok, num / jnp.where(ok, den, 1), 0).astype(x.dtype)


def check_ndim(name: str, x: Array, ndim: int, shape_doc: str) -> None:
    """Raises ``ValueError`` naming ``name`` and the expected ``shape_doc`` if ``x.ndim != ndim``."""
    if jnp.ndim(x) != ndim:
        raise ValueError(f"{name} must have shape {shape_doc}, got shape {tuple(jnp.shape(x))}")


def check_same_shape(name_a: str, a: Array, name_b: str, b: Array) -> None:
    """Raises ``ValueError`` if ``a`` and ``b`` have different shapes."""
    if tuple(jnp.shape(a)) != tuple(jnp.shape(b)):
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got {tuple(jnp.shape(a))} "
            f"and {tuple(jnp.shape(b))}"
        )


def check_batch_mask(mask: Array | None, batch: int) -> None:
    """Raises ``ValueError`` unless ``mask`` is ``None`` or has shape ``[B]``."""
    if mask is not None and tuple(jnp.shape(mask)) != (batch,):
        raise ValueError(f"mask must have shape [B]=({batch},), got {tuple(jnp.shape(mask))}")


def safe_norm(x: Array, axis: int | Sequence[int] | None = -1, keepdims: bool = False) -> Array:
    """Euclidean norm whose gradient at 0 is 0 (not NaN); the value is exact (0 at 0)."""
    ss = jnp.sum(x * x, axis=axis, keepdims=keepdims)
    pos = ss > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, ss, 1.0)), 0.0)
