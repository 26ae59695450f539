"""The jitted train and eval steps, and the recipe's weighted sum of loss terms.

A recipe names its loss terms in the config (DESIGN.md "Recipe = weighted sum"):

    losses = {"ce": {"fn": "softmax_xent", "weight": 0.1,
                     "inputs": ["student.logits", "batch.labels"]},
              "kd": {"fn": "kd_kl", "weight": 0.9, "kw": {"temperature": 4.0},
                     "inputs": ["student.logits", "teacher.cnn.logits"]}}

Each `inputs` entry is a key path into the step's namespace:
  batch.<key>                  the input batch (audio, labels, label_mask, mask, ...)
  <model>.logits / <model>.feats.<key>          a trainable model's outputs
  teacher.<name>.logits / teacher.<name>.feats.<key>   a frozen teacher's outputs
  peers.logits                 all trainable models' logits stacked `[K, B, C]`
`kw_inputs` maps keyword arguments to key paths (e.g. `{"mask": "batch.mask"}`).
A term returning `[B]` is reduced with `masked_mean(value, batch.mask)`; a
scalar is used as is. Every term (unweighted) and the total are metrics.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from kdjax import augment
from kdjax import losses as losses_lib
from kdjax.train.state import TrainState


@dataclasses.dataclass(frozen=True)
class LossTerm:
    """One weighted loss term of a recipe (see module docstring)."""

    name: str
    fn: Callable[..., jax.Array]
    weight: float
    inputs: tuple[str, ...]
    kw: Mapping[str, Any]
    kw_inputs: Mapping[str, str]

    @classmethod
    def from_config(cls, name: str, cfg: Mapping[str, Any]) -> LossTerm:
        """Builds a term from its config dict; raises ValueError naming the bad field."""
        unknown = set(cfg) - {"fn", "weight", "inputs", "kw", "kw_inputs"}
        if unknown:
            raise ValueError(f"losses.{name}: unknown field(s) {sorted(unknown)}")
        fn_name = cfg.get("fn")
        fn = getattr(losses_lib, str(fn_name), None)
        if fn is None or not callable(fn):
            raise ValueError(f"losses.{name}.fn={fn_name!r}: no such function in kdjax.losses")
        if not cfg.get("inputs"):
            raise ValueError(f"losses.{name}.inputs: expected a list of key paths")
        return cls(
            name=name,
            fn=fn,
            weight=float(cfg.get("weight", 1.0)),
            inputs=tuple(cfg["inputs"]),
            kw=dict(cfg.get("kw") or {}),
            kw_inputs=dict(cfg.get("kw_inputs") or {}),
        )


def resolve(namespace: Mapping[str, Any], path: str) -> Any:
    """Looks up a dotted key path ("teacher.cnn.feats.frames") in nested dicts.

    Raises:
      KeyError: a missing key, naming the path and the keys that exist at that level.
    """
    node: Any = namespace
    for i, part in enumerate(path.split(".")):
        if not isinstance(node, Mapping) or part not in node:
            have = sorted(node) if isinstance(node, Mapping) else type(node).__name__
            raise KeyError(
                f"loss input {path!r}: no {part!r} at {'.'.join(path.split('.')[:i]) or 'top'}; has {have}"
            )
        node = node[part]
    return node


def weighted_loss(
    terms: tuple[LossTerm, ...], namespace: Mapping[str, Any], mask: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Sum of weight * term over the recipe's terms; returns (total, {"loss/<name>": value})."""
    total = jnp.zeros((), jnp.float32)
    metrics = {}
    for t in terms:
        args = [resolve(namespace, p) for p in t.inputs]
        kw = dict(t.kw) | {k: resolve(namespace, p) for k, p in t.kw_inputs.items()}
        value = t.fn(*args, **kw)
        if value.ndim == 1:
            value = losses_lib.masked_mean(value, mask)
        elif value.ndim != 0:
            raise ValueError(
                f"losses.{t.name}: {t.fn.__name__} returned shape {value.shape}, expected [B] or scalar"
            )
        metrics[f"loss/{t.name}"] = value
        total = total + t.weight * value
    metrics["loss"] = total
    return total, metrics


@dataclasses.dataclass(frozen=True, eq=False)
class StepSpec:
    """Everything static about a recipe's step (hashable by identity for jit).

    Attributes:
      models: trainable Flax modules by name.
      teachers: frozen teacher modules by name.
      frontends: feature functions `wave [B, N] -> [B, T, F]` by model/teacher name
        (teachers under "teacher.<name>").
      terms: the loss terms.
      teacher_train_mode: run teachers with `train=True` (BatchNorm batch statistics);
        default False (eval mode, running statistics).
      mixup_alpha: > 0 mixes waveforms and labels (mixup, Beta(alpha, alpha)) inside the
        step, before the front-ends, so teachers and students see the same mixed view
        ("consistent teaching", Beyer et al. CVPR 2022); 0 disables.
    """

    models: Mapping[str, nn.Module]
    teachers: Mapping[str, nn.Module]
    frontends: Mapping[str, Callable[[jax.Array], jax.Array]]
    terms: tuple[LossTerm, ...]
    teacher_train_mode: bool = False
    mixup_alpha: float = 0.0

    def features(self, audio: jax.Array) -> dict[str, jax.Array]:
        """Runs each distinct front-end once (models sharing a front-end object share its output)."""
        cache: dict[int, jax.Array] = {}
        out = {}
        for key, fe in self.frontends.items():
            if id(fe) not in cache:
                cache[id(fe)] = fe(audio)
            out[key] = cache[id(fe)]
        return out


def teacher_outputs(spec: StepSpec, teachers: Mapping[str, Any], feats: Mapping[str, jax.Array]):
    """Frozen teacher forward passes: `{name: {"logits", "feats"}}`, under stop_gradient."""
    out = {}
    for name, module in spec.teachers.items():
        logits, tfeats = module.apply(
            teachers[name], feats[f"teacher.{name}"], train=spec.teacher_train_mode,
            mutable=False,
        )
        out[name] = jax.lax.stop_gradient({"logits": logits, "feats": tfeats})
    return out


def train_step(
    state: TrainState,
    teachers: Mapping[str, Any],
    batch: Mapping[str, jax.Array],
    rng: jax.Array,
    *,
    spec: StepSpec,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimisation step of all trainable models, with frozen teachers in the same program.

    Args:
      state: TrainState (params/batch_stats keyed by model name).
      teachers: teacher variables `{name: {"params", "batch_stats"}}` (not updated).
      batch: `audio [B, N]`, `labels [B, C]`, `mask [B]` (+ optional keys), sharded on "data".
      rng: PRNG key for dropout; folded with the step so resumed runs repeat exactly.
      spec: static StepSpec.

    Returns:
      (new state, metrics: every loss term, the total, per-model train accuracy).
    """
    rng = jax.random.fold_in(rng, state.step)
    if spec.mixup_alpha > 0:
        audio, labels = augment.mixup(
            jax.random.fold_in(rng, 0x7FFFFFFF), batch["audio"], batch["labels"], alpha=spec.mixup_alpha
        )
        batch = dict(batch, audio=audio, labels=labels)
    feats = spec.features(batch["audio"])
    tout = teacher_outputs(spec, teachers, feats)

    def loss_fn(params):
        ns: dict[str, Any] = {"batch": batch, "teacher": tout}
        new_stats = {}
        for i, (name, module) in enumerate(spec.models.items()):
            (logits, mfeats), upd = module.apply(
                {"params": params[name], "batch_stats": state.batch_stats[name]},
                feats[name],
                train=True,
                mutable=["batch_stats"],
                rngs={"dropout": jax.random.fold_in(rng, i)},
            )
            ns[name] = {"logits": logits, "feats": mfeats}
            new_stats[name] = upd.get("batch_stats", {})
        ns["peers"] = {"logits": jnp.stack([ns[n]["logits"] for n in spec.models])}
        total, metrics = weighted_loss(spec.terms, ns, batch["mask"])
        for name in spec.models:
            hit = jnp.argmax(ns[name]["logits"], -1) == jnp.argmax(batch["labels"], -1)
            metrics[f"train_accuracy/{name}"] = losses_lib.masked_mean(hit.astype(jnp.float32), batch["mask"])
        return total, (metrics, new_stats)

    grads, (metrics, new_stats) = jax.grad(loss_fn, has_aux=True)(state.params)
    metrics["grad_norm"] = jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree.leaves(grads)))
    return state.apply_gradients(grads, new_stats), metrics


def eval_logits(
    params: Mapping[str, Any],
    batch_stats: Mapping[str, Any],
    audio: jax.Array,
    *,
    spec: StepSpec,
) -> dict[str, jax.Array]:
    """Eval-mode logits `[B, C]` of every trainable model, by name."""
    feats = spec.features(audio)
    out = {}
    for name, module in spec.models.items():
        logits, _ = module.apply(
            {"params": params[name], "batch_stats": batch_stats[name]}, feats[name], train=False
        )
        out[name] = logits
    return out


def jit_train_step(spec: StepSpec):
    """`jax.jit` of `train_step` for `spec`, donating the old state's buffers.

    Partitioning follows the inputs' shardings: state and teachers replicated,
    batch sharded on the mesh's "data" axis (see `kdjax.train.loop`).
    """
    return jax.jit(functools.partial(train_step, spec=spec), donate_argnums=0)
