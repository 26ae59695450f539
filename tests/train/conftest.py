"""Small configs for end-to-end training tests on real FSDD clips."""

import copy

import ml_collections
import pytest

from configs import fsdd


def small(stage: str, *, steps: int = 4, seed: int = 0, max_examples: int = 64, **over) -> ml_collections.ConfigDict:
    """One stage of the FSDD main job shrunk to a few steps on a strided subset of clips."""
    c = copy.deepcopy(fsdd.get_config("variant=tiny,seeds=1").stages[stage])
    with c.unlocked():
        c.num_steps = steps
        c.seed = seed
        c.batch_size = 8
        c.eval_batch_size = 16
        c.eval_every = 2
        c.checkpoint_every = 2
        c.quiet = True
        c.data.kw.max_examples = max_examples
        for k, v in over.items():
            c[k] = v
    return c


@pytest.fixture
def small_config():
    return small
