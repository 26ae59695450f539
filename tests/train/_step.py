"""Helpers shared by the recipe step tests (test_iusp, test_temporal_kd)."""

import jax

from kdjax.train.forward import forward


def step_namespace(prog, state, teachers, batch):
    """The step's namespace, exactly as train_step computes it at `state.step` (train mode,
    dropout key `fold_in(key(3), step)`, the key the tests pass to train_step)."""
    rng = jax.random.fold_in(jax.random.key(3), state.step)
    variables = dict(teachers) | {n: {"params": state.params[n], "batch_stats": state.batch_stats[n]}
                                  for n in prog.models}
    ns, _ = forward(prog, variables, batch, rng, train=True)
    return ns
