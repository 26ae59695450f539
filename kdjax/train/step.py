"""The jitted train and eval steps over a recipe's Program (compiled by kdjax.train.program, run
by kdjax.train.forward).

A recipe names its modules and loss terms in the config (a weighted sum of loss terms, see
docs/architecture.md):

    losses = {"ce": {"fn": "softmax_xent", "weight": 0.1,
                     "inputs": ["student.logits", "batch.labels"]},
              "kd": {"fn": "kd_kl", "weight": 0.9, "kw": {"temperature": 4.0},
                     "inputs": ["student.logits", "teacher.cnn.logits"]}}

Each `inputs` entry is a key path into the step's namespace (see kdjax.train.program):
`batch.<key>`, `features.<key>`, `<model>.logits`, `<model>.feats.<key>`,
`teacher.<name>.logits|feats.<key>|bn`, `peers.logits` (`[K, B, C]`). `kw_inputs` maps keyword
arguments to key paths (e.g. `{"mask": "batch.mask"}`). A term returning `[B]` is reduced with
`masked_mean(value, batch.mask)`, `[K, B]` per peer then summed, a scalar is used as is. Every
term (unweighted) and the total are metrics.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from kdjax.train.forward import augment_features, forward, mix, train_metrics, weighted_loss
from kdjax.train.program import Program
from kdjax.train.state import TrainState


def loss_and_grads(state: TrainState, teachers: Mapping[str, Any], batch: Mapping[str, jax.Array],
                   rng: jax.Array, *, program: Program
                   ) -> tuple[dict[str, Any], dict[str, jax.Array], dict[str, Any]]:
    """The gradients of the recipe's loss with respect to `state.params`, as `train_step` takes
    them (the batch mixed, the students' front-end outputs SpecAugment-masked when the config
    has `spec_augment`, the namespace filled, the loss terms summed).

    Args: as `train_step`; `rng` is the step's key (already folded with the step).

    Returns:
      (grads (the structure of `state.params`), metrics (every loss term, the total, per-model
      train accuracy/micro-F1), new batch_stats of the modules run in train mode, by name).
    """
    batch = mix(program, batch, rng)
    masked = augment_features(program, batch, rng)  # SpecAugment: students' inputs only

    def loss_fn(params):
        variables = dict(teachers) | {
            n: {"params": params[n], "batch_stats": state.batch_stats[n]} for n in program.models}
        ns, new_stats = forward(program, variables, batch, rng, train=True, overrides=masked)
        total, metrics = weighted_loss(program.terms, ns, batch["mask"], state.step)
        metrics |= train_metrics(program, ns, batch)
        return total, (metrics, new_stats)

    grads, (metrics, new_stats) = jax.grad(loss_fn, has_aux=True)(state.params)
    return grads, metrics, new_stats


def train_step(
    state: TrainState,
    teachers: Mapping[str, Any],
    batch: Mapping[str, jax.Array],
    rng: jax.Array,
    *,
    program: Program,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimisation step of all trainable modules, with frozen teachers in the same program.

    Args:
      state: TrainState (params/batch_stats keyed by trainable module name).
      teachers: frozen variables `{name: {"params", "batch_stats"}}` (not updated; cached
        teachers, `program.cached`, have none: their outputs are batch keys).
      batch: `audio [B, N]`, `labels [B, C]`, `mask [B]` (+ optional keys), sharded on "data".
      rng: PRNG key for dropout and mixup; folded with the step so resumed runs repeat exactly.
      program: the static Program.

    Returns:
      (new state, metrics: every loss term, the total, per-model train accuracy/micro-F1,
      grad_norm).
    """
    rng = jax.random.fold_in(rng, state.step)
    grads, metrics, new_stats = loss_and_grads(state, teachers, batch, rng, program=program)
    metrics["grad_norm"] = jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree.leaves(grads)))
    new_stats = {n: new_stats.get(n, state.batch_stats[n]) for n in state.batch_stats}
    return state.apply_gradients(grads, new_stats), metrics


def eval_logits(
    params: Mapping[str, Any],
    batch_stats: Mapping[str, Any],
    audio: jax.Array | Mapping[str, jax.Array],
    *,
    program: Program,
    teachers: Mapping[str, Any] | None = None,
) -> dict[str, jax.Array]:
    """Eval-mode logits `[B, C]` of every deployed model, by name.

    Only the modules the deployed models need are run (training-only heads are not).

    Args:
      audio: `[B, N]` waveforms, or a batch dict (for inputs other than audio).
      teachers: frozen variables, if a deployed model reads a frozen module's outputs.
    """
    batch = dict(audio) if isinstance(audio, Mapping) else {"audio": audio}
    nodes = program.subgraph(program.deployed)
    variables = dict(teachers or {}) | {n: {"params": params[n], "batch_stats": batch_stats[n]}
                                        for n in program.models if n in params}
    ns, _ = forward(program, variables, batch, jax.random.key(0), train=False, nodes=nodes)
    return {n: ns[n]["logits"] for n in program.deployed}


def jit_train_step(program: Program):
    """`jax.jit` of `train_step` for `program`, donating the old state's buffers.

    Partitioning follows the inputs' shardings: state and teachers replicated,
    batch sharded on the mesh's "data" axis (see `kdjax.train.loop`).
    """
    return jax.jit(functools.partial(train_step, program=program), donate_argnums=0)
