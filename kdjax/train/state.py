"""Train state: every trainable model's params and BatchNorm statistics, optimiser state, step.

`params` and `batch_stats` are dicts keyed by model name (`{"student": ...}`,
or several peers `{"stft": ..., "mfcc": ...}` for mutual learning), so one
optimiser step updates all trainable models together.
"""

from __future__ import annotations

from typing import Any

import flax.struct as struct
import jax
import optax


class TrainState(struct.PyTreeNode):
    """Immutable train state (a pytree; `tx` is static)."""

    step: jax.Array
    params: dict[str, Any]
    batch_stats: dict[str, Any]
    opt_state: Any
    tx: optax.GradientTransformation = struct.field(pytree_node=False)

    @classmethod
    def create(cls, *, params, batch_stats, tx) -> TrainState:
        return cls(
            step=jax.numpy.zeros((), jax.numpy.int32),
            params=params,
            batch_stats=batch_stats,
            opt_state=tx.init(params),
            tx=tx,
        )

    def apply_gradients(self, grads, batch_stats) -> TrainState:
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        return self.replace(
            step=self.step + 1,
            params=optax.apply_updates(self.params, updates),
            batch_stats=batch_stats,
            opt_state=opt_state,
        )

    def to_checkpoint(self) -> dict[str, Any]:
        """The saved part of the state (no optimiser definition)."""
        return {
            "step": self.step,
            "params": self.params,
            "batch_stats": self.batch_stats,
            "opt_state": self.opt_state,
        }

    def from_checkpoint(self, tree: dict[str, Any]) -> TrainState:
        return self.replace(**tree)
