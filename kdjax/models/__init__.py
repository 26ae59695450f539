"""Flax linen models. Each `__call__(x, *, train)` returns `(logits [B, C], feats: dict)`.

Standard feats keys (when the model has them):
  frames     `[B, T, D]` temporal features before pooling
  embedding  `[B, D]`    after global pooling
  stats      `[B, 2D]`   mean+std statistics pooling
  fmap{i}    stage outputs (`[B, T, C]` for 1-D models, `[B, T, F, C]` for 2-D)
  attention  `[L, B, H, N, N]` transformer attention weights

Models are found by module name: `build("temporal_cnn", **kw)` is
`kdjax.models.temporal_cnn.Model(**kw)`.
"""

from __future__ import annotations

import importlib
from typing import Any

import flax.linen as nn
import jax


def build(name: str, **kwargs: Any) -> nn.Module:
    """Instantiates `kdjax.models.<name>.Model(**kwargs)`.

    Raises:
      ValueError: no such model module, or an unknown keyword for it.
    """
    try:
        mod = importlib.import_module(f"kdjax.models.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"kdjax.models.{name}":
            raise
        raise ValueError(f"model={name!r}: no model module kdjax/models/{name}.py") from None
    try:
        return mod.Model(**kwargs)
    except TypeError as e:
        raise ValueError(f"model={name!r}: bad keyword arguments {sorted(kwargs)}: {e}") from None


def count_params(params: Any) -> int:
    """Number of scalar parameters in a pytree."""
    return int(sum(x.size for x in jax.tree.leaves(params)))
