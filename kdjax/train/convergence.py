"""Budgets that stop at convergence: early stopping, reduce-on-plateau, a carved validation split.

`cfg.num_steps` is a ceiling. Two optional config blocks (off by default: absent, None, empty or
with `patience=0`; a config without them trains exactly as before). configs/common.py's train
configs carry both with `patience=0`, so that absl overrides such as
`--config.stages.kd.early_stopping.patience=5` find the fields (`EARLY_STOPPING_OFF`,
`PLATEAU_OFF`), and every recipe takes the config arguments `patience`, `min_delta`,
`val_fraction`, `plateau`, `plateau_factor` (configs/common.py `BUDGET_ARGS`):

  early_stopping = dict(patience=5, min_delta=0.0, val_fraction=0.1, val_seed=0)
      stop after `patience` validations (evaluations, every `eval_every` steps) in a row without
      an improvement of the validation metric by more than `min_delta` (`stopping_point`).
      Without a validation split (e.g. cross-validation folds) a stratified `val_fraction` of
      the train split (seed `val_seed`) becomes the validation split (`carve_validation`).
  reduce_on_plateau = dict(factor=0.5, patience=3, rtol=1e-4, atol=0.0, cooldown=0, min_scale=0.0)
      `optax.contrib.reduce_on_plateau` (its rule, its keywords; `patience` and `cooldown` in
      validations), fed `1 - validation metric` at every validation (`plateau_update`; the
      metrics are in [0, 1] and optax's relative tolerance `rtol` assumes a non-negative value
      to minimise: a negated metric would count an equal value as an improvement); the train
      step multiplies the updates by its current scale (`plateau_scale`).

The monitored value is the validation metric (`cfg.eval_metric`, higher is better) of the
deployed models: each model's own for its best step and convergence; their mean for the plateau
and the stop (a run stops when every deployed model has converged).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from optax.contrib import ReduceLROnPlateauState, reduce_on_plateau

PLATEAU_KEYS = ("factor", "patience", "rtol", "atol", "cooldown", "min_scale")
EARLY_STOPPING_KEYS = ("patience", "min_delta", "val_fraction", "val_seed")
# The blocks as train configs carry them when off (patience 0): every field present, so absl's
# `--config.<path>.early_stopping.<field>=...` overrides work; the other values are the defaults.
EARLY_STOPPING_OFF = dict(patience=0, min_delta=0.0, val_fraction=0.1, val_seed=0)
PLATEAU_OFF = dict(factor=0.5, patience=0, rtol=1e-4, atol=0.0, cooldown=0, min_scale=0.0)


def _block(cfg: ml_collections.ConfigDict, name: str, keys: Sequence[str]) -> dict[str, Any] | None:
    """`cfg.<name>` as a dict (None when unset, None, empty or `patience=0`), its keys checked.

    Raises:
      ValueError: an unknown field, or a negative patience (names the block).
    """
    b = cfg.get(name)
    if not b:
        return None
    b = dict(b)
    unknown = set(b) - set(keys)
    if unknown:
        raise ValueError(
            f"{name}: unknown field(s) {sorted(unknown)}; expected some of {list(keys)}"
        )
    if "patience" in b and int(b["patience"]) < 0:
        raise ValueError(f"{name}.patience={b['patience']}: expected >= 1 (or 0: off)")
    if "patience" in b and int(b["patience"]) == 0:
        return None
    return b


def early_stopping_config(cfg: ml_collections.ConfigDict) -> dict[str, Any] | None:
    """`{patience, min_delta, val_fraction, val_seed}` of `cfg.early_stopping` (defaults 5, 0.0,
    0.1, 0), or None when early stopping is off (no block, an empty one or `patience=0`).

    Raises:
      ValueError: unknown field, patience < 0, min_delta < 0 or val_fraction outside (0, 1).
    """
    b = _block(cfg, "early_stopping", EARLY_STOPPING_KEYS)
    if b is None:
        return None
    out = {
        "patience": int(b.get("patience", 5)),
        "min_delta": float(b.get("min_delta", 0.0)),
        "val_fraction": float(b.get("val_fraction", 0.1)),
        "val_seed": int(b.get("val_seed", 0)),
    }
    if out["patience"] < 1 or out["min_delta"] < 0 or not 0 < out["val_fraction"] < 1:
        raise ValueError(
            f"early_stopping={b}: expected patience >= 1, min_delta >= 0, 0 < val_fraction < 1"
        )
    return out


def stopping_point(
    values: Sequence[float], patience: int, min_delta: float = 0.0
) -> tuple[int, bool]:
    """The early-stopping rule on a sequence of validation values (higher is better).

    An evaluation improves when its value exceeds the best so far by more than `min_delta`
    (the first always does). The run has converged after `patience` evaluations in a row
    without an improvement: Keras' `EarlyStopping(patience, min_delta, mode="max")` rule.

    Args:
      values: `[E]` the validation metric at each evaluation so far (NaN never improves).
      patience: evaluations without improvement that stop the run (>= 1).
      min_delta: the smallest improvement that counts (in the metric's units).

    Returns:
      (index of the best evaluation (-1 for no values), converged: `E - 1 - best >= patience`).
    """
    best, best_val = -1, -np.inf
    for i, v in enumerate(values):
        if not np.isnan(v) and (best < 0 or v > best_val + min_delta):
            best, best_val = i, float(v)
    return best, best >= 0 and len(values) - 1 - best >= patience


# ---------------------------------------------------------------------------------------------
# Reduce-on-plateau.


def plateau_config(cfg: ml_collections.ConfigDict) -> dict[str, Any] | None:
    """The keywords of `optax.contrib.reduce_on_plateau` from `cfg.reduce_on_plateau` (None: off:
    no block, an empty one or `patience=0`).

    Raises:
      ValueError: an unknown field or a negative patience (optax raises for other bad values).
    """
    return _block(cfg, "reduce_on_plateau", PLATEAU_KEYS)


def plateau_scale(**kw: Any) -> optax.GradientTransformation:
    """The train-step half of `optax.contrib.reduce_on_plateau(**kw)`: its state, and the updates
    multiplied by the state's `scale`, with the state left as it is (`plateau_update` advances it
    at validations, so a train batch's loss never counts as a plateau value).

    Chained last in `kdjax.train.setup.make_optimizer`, it scales the learning rate of every
    optimiser that is linear in the learning rate (all optax optimisers here).
    """
    base = reduce_on_plateau(**kw)

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda g: state.scale * g, updates), state

    return optax.GradientTransformation(base.init, update)


def plateau_update(opt_state: Any, value: float, **kw: Any) -> Any:
    """`opt_state` with its `ReduceLROnPlateauState` advanced by one value through optax's own
    `reduce_on_plateau(**kw).update` (the rule: best value, patience, factor, cooldown).

    Args:
      opt_state: the optimiser state of `make_optimizer` with `reduce_on_plateau` on (a chain
        whose last element is the plateau state).
      value: the value to minimise (>= 0 for `rtol`), e.g. 1 - validation accuracy.

    Raises:
      ValueError: `opt_state` has no plateau state last.
    """
    if not isinstance(opt_state, tuple) or not isinstance(opt_state[-1], ReduceLROnPlateauState):
        raise ValueError(
            "plateau_update: the optimiser state has no ReduceLROnPlateauState last "
            "(is reduce_on_plateau set in the config?)"
        )
    new = _plateau_step(tuple(sorted(kw.items())))(opt_state[-1], jnp.float32(value))
    return (*opt_state[:-1], new)


@functools.cache
def _plateau_step(kw: tuple[tuple[str, Any], ...]) -> Callable[[Any, jax.Array], Any]:
    """The jitted `(plateau state, value) -> new state` of `reduce_on_plateau(**dict(kw))`
    (one program per keyword set, not one per validation)."""
    tx = reduce_on_plateau(**dict(kw))
    return jax.jit(lambda s, v: tx.update(jnp.zeros(()), s, value=v)[1])


def plateau_lr_scale(opt_state: Any) -> float | None:
    """The current reduce-on-plateau scale of `opt_state` (None without the plateau schedule)."""
    if (
        isinstance(opt_state, tuple)
        and opt_state
        and isinstance(opt_state[-1], ReduceLROnPlateauState)
    ):
        return float(opt_state[-1].scale)
    return None


# ---------------------------------------------------------------------------------------------
# A validation split carved from train.


class SubsetSource:
    """The elements `indices` of a random-access source, in that order (their `index` field,
    the position in the parent source, is kept, so joined per-clip arrays still match)."""

    def __init__(self, source: Any, indices: Sequence[int], name: str = ""):
        self.source = source
        self.indices = np.asarray(indices, np.int64)
        for k in ("sample_rate", "num_classes", "class_names", "multi_label"):
            if hasattr(source, k):
                setattr(self, k, getattr(source, k))
        self.name = name or getattr(source, "name", "")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.source[int(self.indices[int(i)])]

    def __repr__(self) -> str:
        return f"SubsetSource({self.name!r}, {len(self)} of {self.source!r})"


def carve_indices(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic stratified hold-out: (kept, held-out) positions, each sorted.

    Per class (argmax label), `round(n_c * fraction)` positions (at least 1 when the class
    has 2 or more clips) drawn with `np.random.default_rng(seed)`, classes in ascending order.

    Args:
      labels: `[N]` class ids.
      fraction: the held-out fraction (0 < fraction < 1).
      seed: the draw's seed.

    Raises:
      ValueError: fraction outside (0, 1), or nothing held out / nothing kept.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"val_fraction={fraction}: expected 0 < val_fraction < 1")
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(labels):
        pos = np.flatnonzero(labels == c)
        k = int(round(len(pos) * fraction))
        k = max(k, 1) if len(pos) >= 2 else k
        held.append(rng.permutation(pos)[:k])
    held = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    kept = np.setdiff1d(np.arange(len(labels)), held)
    if not len(held) or not len(kept):
        raise ValueError(
            f"val_fraction={fraction}: holds out {len(held)} of {len(labels)} clips; "
            "expected at least one clip on each side"
        )
    return kept, held


def carve_validation(train: Any, fraction: float, seed: int) -> tuple[SubsetSource, SubsetSource]:
    """(train, validation) sources carved from a train source by `carve_indices` on its labels.

    Labels come from `label_ids()` of the source (or of the source it wraps, e.g. a
    JoinedSource's ClipSource), else from the argmax of each element's `labels` (reads every
    element once).
    """
    base = train
    while not hasattr(base, "label_ids") and hasattr(base, "source"):  # e.g. a JoinedSource
        base = base.source
    if hasattr(base, "label_ids") and len(base) == len(train):
        labels = np.asarray(base.label_ids())
    else:
        labels = np.array([int(np.argmax(train[i]["labels"])) for i in range(len(train))])
    kept, held = carve_indices(labels, fraction, seed)
    name = getattr(train, "name", "train")
    return (
        SubsetSource(train, kept, f"{name} (carved train)"),
        SubsetSource(train, held, f"{name} (carved validation)"),
    )


def carve_if_needed(
    cfg: ml_collections.ConfigDict, sources: dict[str, Any], log: bool = True
) -> dict[str, Any]:
    """`sources` with a validation split carved from train (`carve_validation`) when early
    stopping is on and the config has no validation split (e.g. cross-validation folds);
    otherwise `sources` unchanged. Says so on stdout (`log`)."""
    es = early_stopping_config(cfg)
    if es is None or sources.get("validation") is not None or sources.get("train") is None:
        return sources
    train, val = carve_validation(sources["train"], es["val_fraction"], es["val_seed"])
    if log:
        print(
            f"early_stopping: no validation split; carved {len(val)} of {len(sources['train'])} "
            f"train clips as validation (val_fraction={es['val_fraction']}, "
            f"val_seed={es['val_seed']}, stratified by class)",
            flush=True,
        )
    return dict(sources) | {"train": train, "validation": val}


def plateau_value(values: Mapping[str, float]) -> float:
    """The value `plateau_update` minimises: `1 - mean` of the deployed models' validation
    metrics (higher-is-better metrics in [0, 1]: accuracy, mAP, micro-AUPRC, ...)."""
    return 1.0 - float(np.mean(list(values.values())))
