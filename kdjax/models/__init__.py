"""Flax linen models. Each `__call__(x, *, train)` returns `(logits [B, C], feats: dict)`.

Standard feats keys (when the model has them):
  frames     `[B, T, D]` temporal features before pooling
  embedding  `[B, D]`    after global pooling
  stats      `[B, 2D]`   mean+std statistics pooling
  fmap{i}    stage outputs (`[B, T, C]` for 1-D models, `[B, T, F, C]` for 2-D)
  attention  `[L, B, H, N, N]` transformer attention weights

Models are found by module name: `build("temporal_cnn", **kw)` is
`kdjax.models.temporal_cnn.Model(**kw)`. The zoo (each module's docstring names its paper and
reference implementation):
  temporal_cnn    TC-ResNet-style 1-D CNN (mel bins as channels)
  cp_resnet       CP-ResNet, receptive field limited by `rho` (Koutini et al. 2019)
  cnn2d           PANNs CNN10-style 2-D CNN (Kong et al. 2020)
  mobile_fcn      Mobile-FCN tagger (EAsT's MagnaTagATune student; Choi et al. 2016 FCN)
  crnn            conv front + bidirectional GRU (Cakir et al. 2017)
  lstm_p          LSTM with projection, KWS (Sak et al. 2014)
  att_rnn         Att-RNN (de Andrade et al. 2018)
  mhatt_rnn       multi-head attention RNN (Rybakov et al. 2020)
  transformer     frame transformer with a class token, returns attention (AST/ViT-style)
  stats_pool_net  x-vector TDNN + statistics pooling (Snyder et al. 2018)
  attention_head  Temporal KD's training-only attention over a student's frames (Choi et al. 2022)
  linear_probe    mean over time + Dense on a pre-computed embedding sequence (EAsT's probe)
  wav2vec2        wav2vec 2.0 over raw waveforms, loads Hugging Face checkpoints (Baevski et al. 2020)

A model module may also define `load_pretrained(path, params) -> params` (and optionally
`pretrained_kwargs(path) -> kw`): the `pretrained=` field of a model config
(kdjax.train.program) then replaces its initial parameters with a checkpoint's.
"""

from __future__ import annotations

from kdjax import _extras

_extras.require("kdjax.models", ("flax",))  # without kdjax[train]: a one-line error

import importlib
from typing import Any

import flax.linen as nn
import jax


def build(name: str, **kwargs: Any) -> nn.Module:
    """Instantiates `kdjax.models.<name>.Model(**kwargs)`.

    Raises:
      ValueError: no such model module, or an unknown keyword for it.
    """
    mod = _module(name)
    try:
        return mod.Model(**kwargs)
    except TypeError as e:
        raise ValueError(f"model={name!r}: bad keyword arguments {sorted(kwargs)}: {e}") from None


def _module(name: str):
    try:
        return importlib.import_module(f"kdjax.models.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"kdjax.models.{name}":
            raise
        raise ValueError(f"model={name!r}: no model module kdjax/models/{name}.py") from None


def pretrained_loader(name: str) -> Any:
    """`kdjax.models.<name>.load_pretrained(path, params) -> params`.

    Raises:
      ValueError: no such module, or it defines no `load_pretrained`.
    """
    fn = getattr(_module(name), "load_pretrained", None)
    if not callable(fn):
        raise ValueError(f"model={name!r}: kdjax/models/{name}.py defines no load_pretrained(path, params), "
                         "so it cannot load a pretrained checkpoint")
    return fn


def pretrained_kwargs(name: str, path: str) -> dict[str, Any]:
    """Model keyword arguments a checkpoint implies (`<module>.pretrained_kwargs(path)`; {} if the
    module defines none)."""
    fn = getattr(_module(name), "pretrained_kwargs", None)
    return dict(fn(path)) if callable(fn) else {}


def count_params(params: Any) -> int:
    """Number of scalar parameters in a pytree."""
    return int(sum(x.size for x in jax.tree.leaves(params)))
