"""Small helpers shared by the model zoo (input checks, mixed precision, pooling statistics).

Private: models import these; `build()` never sees this module.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def check_input(
    model: str, x: jax.Array, ndim: int = 3, expected: str = "features [B, T, F]"
) -> None:
    """Raises ValueError naming `model` and the expected shape when `x.ndim != ndim`."""
    if x.ndim != ndim:
        raise ValueError(f"{model}: expected {expected}, got shape {tuple(x.shape)}")


def check_min_size(model: str, x: jax.Array, min_t: int, min_f: int | None = None) -> None:
    """Raises ValueError when the poolings of `model` would leave no frames (or bins) of `x [B, T, F]`."""
    t, f = x.shape[1], x.shape[2]
    if t < min_t or (min_f is not None and f < min_f):
        need = f"T >= {min_t}" + (f" and F >= {min_f}" if min_f is not None else "")
        raise ValueError(
            f"{model}: its poolings need {need}, got features of shape {tuple(x.shape)}"
        )


def cast_input(x: jax.Array, dtype: Any) -> jax.Array:
    """Mixed precision: the (float32) front-end output is cast to the computation dtype.

    Also makes NumPy inputs jax arrays (NumPy indexing with traced indices would fail).
    """
    return jnp.asarray(x) if dtype is None else jnp.asarray(x, dtype)


def f32(tree: Any) -> Any:
    """Every array leaf as float32 (logits and feats leave a model in float32: losses run in it)."""
    return jax.tree.map(lambda a: a.astype(jnp.float32), tree)


def batch_norm(train: bool, dtype: Any, name: str) -> nn.BatchNorm:
    """BatchNorm over the last axis, flax-style momentum 0.9 (torch momentum 0.1), float32 statistics."""
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=dtype, name=name)


def mean_std(frames: jax.Array, axis: int = 1, eps: float = 1e-8) -> tuple[jax.Array, jax.Array]:
    """Mean and standard deviation over `axis` (std = sqrt(max(var, eps)), biased variance)."""
    mean = frames.mean(axis=axis)
    std = jnp.sqrt(jnp.maximum(frames.var(axis=axis), eps))
    return mean, std
