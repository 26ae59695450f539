"""Budgets that stop at convergence (kdjax.train.convergence): the early-stopping rule, optax's
reduce-on-plateau fed at validations, the carved validation split, and a tiny real run."""

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from kdjax.train.convergence import (
    SubsetSource,
    carve_if_needed,
    carve_indices,
    early_stopping_config,
    plateau_lr_scale,
    plateau_update,
    plateau_value,
    stopping_point,
)
from kdjax.train.setup import make_optimizer


def reference_stop(values, patience, min_delta=0.0):
    """Keras EarlyStopping(mode="max") as a wait counter: the index of the evaluation at which
    the run stops (None: never) and the best index."""
    best, best_i, wait = -np.inf, -1, 0
    for i, v in enumerate(values):
        if v > best + min_delta:
            best, best_i, wait = v, i, 0
        else:
            wait += 1
            if wait >= patience:
                return i, best_i
    return None, best_i


def first_stop(values, patience, min_delta=0.0):
    """The first evaluation at which `stopping_point` on the prefix says converged (None: never)."""
    for i in range(len(values)):
        if stopping_point(values[: i + 1], patience, min_delta)[1]:
            return i
    return None


def test_stopping_point_scripted_sequence():
    vals = [0.1, 0.3, 0.3, 0.29, 0.31, 0.2, 0.2]
    # hand-worked: best 0.31 at evaluation 4; two evaluations after it
    assert stopping_point(vals, patience=2) == (4, True)
    assert stopping_point(vals, patience=3) == (4, False)
    assert first_stop(vals, patience=2) == 3  # 0.3 (no gain), 0.29 (no gain) after evaluation 1
    # min_delta: 0.31 is not 0.05 better than 0.3, so evaluation 1 stays the best
    assert stopping_point(vals, patience=2, min_delta=0.05) == (1, True)
    assert first_stop(vals, patience=5, min_delta=0.05) == 6
    assert stopping_point([], patience=1) == (-1, False)
    assert stopping_point([np.nan, np.nan], patience=1) == (-1, False)  # NaN never improves
    assert stopping_point([0.5, np.nan, np.nan], patience=2) == (0, True)


def test_stopping_point_matches_a_wait_counter():
    rng = np.random.default_rng(0)
    for _ in range(300):
        vals = list(np.round(rng.uniform(0, 1, rng.integers(1, 15)), 1))  # ties on purpose
        patience, delta = int(rng.integers(1, 5)), float(rng.choice([0.0, 0.1]))
        stop, best = reference_stop(vals, patience, delta)
        assert first_stop(vals, patience, delta) == stop, (vals, patience, delta)
        if stop is not None:
            assert stopping_point(vals[: stop + 1], patience, delta) == (best, True)


def test_early_stopping_config_defaults_and_errors():
    assert early_stopping_config(ml_collections.ConfigDict({})) is None
    assert early_stopping_config(ml_collections.ConfigDict({"early_stopping": None})) is None
    c = ml_collections.ConfigDict({"early_stopping": {"patience": 2}})
    assert early_stopping_config(c) == {
        "patience": 2,
        "min_delta": 0.0,
        "val_fraction": 0.1,
        "val_seed": 0,
    }
    with pytest.raises(ValueError, match="unknown field"):
        early_stopping_config(ml_collections.ConfigDict({"early_stopping": {"patients": 2}}))
    with pytest.raises(ValueError, match=r"early_stopping.patience=-1: expected >= 1"):
        early_stopping_config(ml_collections.ConfigDict({"early_stopping": {"patience": -1}}))
    # patience 0: off (train configs carry the block so absl overrides find its fields)
    off = ml_collections.ConfigDict({"early_stopping": {"patience": 0}})
    assert early_stopping_config(off) is None


def _opt_cfg(**plateau):
    return ml_collections.ConfigDict(
        {
            "num_steps": 10,
            "optimizer": {"name": "sgd", "kw": {}},
            "schedule": {"name": "constant", "lr": 0.1, "warmup_steps": 0},
            **({"reduce_on_plateau": plateau} if plateau else {}),
        }
    )


def test_reduce_on_plateau_lowers_the_learning_rate_after_a_plateau():
    params = {"w": jnp.ones(3)}
    grads = {"w": jnp.array([1.0, -2.0, 4.0])}
    tx, _ = make_optimizer(_opt_cfg(factor=0.5, patience=2))
    state = tx.init(params)
    step = jax.jit(tx.update)
    u0, state = step(grads, state, params)
    np.testing.assert_allclose(u0["w"], -0.1 * grads["w"], rtol=1e-6)  # sgd, lr 0.1, scale 1
    # accuracies 0.5, 0.6, 0.6, 0.6, 0.55: two validations without improvement after 0.6
    scales = []
    for acc in [0.5, 0.6, 0.6, 0.6, 0.55, 0.55]:
        state = plateau_update(state, plateau_value({"m": acc}), factor=0.5, patience=2)
        scales.append(plateau_lr_scale(state))
    assert scales == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25]
    u1, state = step(grads, state, params)
    np.testing.assert_allclose(u1["w"], -0.1 * 0.25 * grads["w"], rtol=1e-6)
    # the train step itself never advances the plateau state
    assert plateau_lr_scale(state) == 0.25 and int(state[-1].count) == 0


def test_reduce_on_plateau_off_by_default_and_with_grad_clip():
    tx, _ = make_optimizer(_opt_cfg())
    assert plateau_lr_scale(tx.init({"w": jnp.ones(2)})) is None
    with pytest.raises(ValueError, match="no ReduceLROnPlateauState"):
        plateau_update(tx.init({"w": jnp.ones(2)}), 0.5)
    cfg = _opt_cfg(factor=0.1, patience=1)
    cfg.optimizer.grad_clip = 1.0
    tx, _ = make_optimizer(cfg)
    state = tx.init({"w": jnp.ones(2)})
    state = plateau_update(
        plateau_update(state, 0.3, factor=0.1, patience=1), 0.3, factor=0.1, patience=1
    )
    assert plateau_lr_scale(state) == pytest.approx(0.1)
    u, _ = tx.update({"w": jnp.array([3.0, 4.0])}, state, {"w": jnp.ones(2)})  # clipped to norm 1
    np.testing.assert_allclose(u["w"], -0.1 * 0.1 * np.array([0.6, 0.8]), rtol=1e-6)


class _Labels:
    """A source stand-in: 10 classes of unequal size; elements carry their index."""

    def __init__(self, counts):
        self.labels = np.repeat(np.arange(len(counts)), counts)
        self.name = "fake"
        self.num_classes = len(counts)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"index": np.int32(i), "labels": np.eye(self.num_classes)[self.labels[i]]}

    def label_ids(self):
        return self.labels


def test_carve_is_deterministic_stratified_and_disjoint():
    src = _Labels([32, 32, 31, 30, 1, 20, 40, 32, 32, 50])
    kept, held = carve_indices(src.labels, 0.1, seed=3)
    kept2, held2 = carve_indices(src.labels, 0.1, seed=3)
    np.testing.assert_array_equal(held, held2)
    np.testing.assert_array_equal(kept, kept2)
    assert not set(kept) & set(held)
    np.testing.assert_array_equal(np.sort(np.concatenate([kept, held])), np.arange(len(src)))
    counts = np.bincount(src.labels[held], minlength=10)
    assert counts.tolist() == [
        3,
        3,
        3,
        3,
        0,
        2,
        4,
        3,
        3,
        5,
    ]  # round(n_c / 10); a 1-clip class stays
    assert not np.array_equal(carve_indices(src.labels, 0.1, seed=4)[1], held)
    with pytest.raises(ValueError, match="val_fraction"):
        carve_indices(src.labels, 1.0, seed=0)

    cfg = ml_collections.ConfigDict(
        {"early_stopping": {"patience": 2, "val_fraction": 0.1, "val_seed": 3}}
    )
    out = carve_if_needed(cfg, {"train": src, "validation": None, "test": "t"}, log=False)
    assert isinstance(out["validation"], SubsetSource) and out["test"] == "t"
    assert [
        int(out["validation"][i]["index"]) for i in range(len(out["validation"]))
    ] == held.tolist()
    assert [int(out["train"][i]["index"]) for i in range(len(out["train"]))] == kept.tolist()
    # not carved: early stopping off, or a validation split exists
    srcs = {"train": src, "validation": None, "test": None}
    assert carve_if_needed(ml_collections.ConfigDict({}), srcs) is srcs
    srcs = {"train": src, "validation": "v", "test": None}
    assert carve_if_needed(cfg, srcs) is srcs


@pytest.mark.slow
def test_tiny_run_stops_early_on_a_carved_split(small_config, tmp_path, capsys, data_dir):
    """A fold-like stage (no validation split) with early stopping and reduce-on-plateau: the run
    carves a validation split (and says so), stops at the evaluation the reference rule picks,
    lowers the learning rate at each plateau, and records best/last step and convergence."""
    from kdjax.train.loop import train_and_evaluate

    cfg = small_config("student", steps=10)
    with cfg.unlocked():
        cfg.data.eval_split = ""
        cfg.eval_every = 1
        cfg.checkpoint_every = 5
        cfg.early_stopping = {"patience": 2, "val_fraction": 0.25, "val_seed": 0}
        cfg.reduce_on_plateau = {"factor": 0.5, "patience": 1}
    wd = str(tmp_path / "run")
    result = train_and_evaluate(cfg, wd)
    assert "carved" in capsys.readouterr().out

    rows = [json.loads(line) for line in open(os.path.join(wd, "metrics.jsonl"))]
    val = [
        (r["step"], r["val/student/accuracy"], r["lr_scale"])
        for r in rows
        if "val/student/accuracy" in r
    ]
    accs = [a for _, a, _ in val]
    stop, best = reference_stop(accs, patience=2)
    assert stop is not None, accs  # the tiny student plateaus well within 10 steps
    m = result["models"]["student"]
    assert result["last_step"] == val[stop][0] == len(val) < 10 and result["stopped_early"]
    assert m["best_step"] == val[best][0] and m["converged"] is True and m["last_step"] == len(val)
    assert "validation" in m and result["steps"] == 10
    # reduce-on-plateau reference (patience 1, no cooldown): halve after each non-improvement
    best_v, scale, expect = np.inf, 1.0, []
    for a in accs:
        v = 1.0 - a
        if v < (1 - 1e-4) * best_v:
            best_v = v
        else:
            scale *= 0.5
        expect.append(scale)
    np.testing.assert_allclose([s for *_, s in val], expect)
    assert min(expect) < 1.0

    # rerun in the same folder: it resumes from the stop's checkpoint and does not train on
    os.remove(os.path.join(wd, "result.json"))
    again = train_and_evaluate(cfg, wd)
    assert again["last_step"] == result["last_step"] and again["stopped_early"]
    assert again["models"]["student"]["test"] == m["test"]
