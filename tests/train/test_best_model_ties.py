"""The best-model rule of the train loop counts a tie as no improvement (kdjax.train.loop.improves),
consistently with the convergence rule (kdjax.train.convergence.stopping_point)."""

import numpy as np

from kdjax.train.convergence import stopping_point
from kdjax.train.loop import improves


def test_a_tie_is_no_improvement_even_when_float32_rounds_down():
    v = 566 / 638  # float32 rounds this value down: the old float64-vs-float32 test called it better
    assert float(np.float32(v)) < v
    stored = np.float32(v)  # what TrainRun.snapshot keeps
    assert not improves(v, stored)
    assert improves(567 / 638, stored)
    assert not improves(565 / 638, stored)


def test_best_step_of_a_tied_history_agrees_with_the_convergence_rule():
    hist = [0.80, 566 / 638, 0.85, 566 / 638, 566 / 638, 566 / 638]
    best, best_step = np.float32(-np.inf), -1
    for i, v in enumerate(hist):
        if improves(v, best):
            best, best_step = np.float32(v), i
    idx, converged = stopping_point(hist, patience=3)
    assert best_step == idx == 1 and converged
