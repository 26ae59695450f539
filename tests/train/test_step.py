"""The jitted step: data-parallel on 8 simulated devices equals 1 device; loss terms from config."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from kdjax.train.forward import init_variables, resolve, weighted_loss
from kdjax.train.program import LossTerm, build_program
from kdjax.train.setup import make_optimizer
from kdjax.train.state import TrainState
from kdjax.train.step import jit_train_step
from tests.train.conftest import small


def _setup(cfg, n_classes=10):
    prog = build_program(cfg, n_classes, 8000)
    params, stats = init_variables(prog, jax.random.key(0), 8000)
    tx, _ = make_optimizer(cfg)
    return prog, TrainState.create(params=params, batch_stats=stats, tx=tx)


def _batch(b=16, seed=0):
    k = jax.random.key(seed)
    t = jnp.linspace(0, 1, 8000)
    freqs = 200.0 + 150.0 * (jnp.arange(b) % 10)
    audio = 0.3 * jnp.sin(2 * jnp.pi * freqs[:, None] * t) + 0.01 * jax.random.normal(k, (b, 8000))
    return {"audio": audio.astype(jnp.float32), "labels": jax.nn.one_hot(jnp.arange(b) % 10, 10),
            "mask": jnp.ones(b, jnp.float32)}


@pytest.mark.parametrize("mixup", [0.0, 0.4])
def test_data_parallel_8_devices_equals_1_device(mixup):
    assert jax.device_count() == 8, "tests/conftest.py simulates 8 CPU devices"
    cfg = small("student")
    with cfg.unlocked():
        cfg.mixup_alpha = mixup
    results = []
    for devices in (jax.devices()[:1], jax.devices()):
        mesh = jax.sharding.Mesh(np.array(devices), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
        prog, state = _setup(cfg)
        state = jax.device_put(state, NamedSharding(mesh, P()))
        step = jit_train_step(prog)
        for i in range(3):
            batch = jax.device_put(_batch(seed=i), NamedSharding(mesh, P("data")))
            state, m = step(state, {}, batch, jax.random.key(1))
        results.append((jax.device_get(state.params), jax.device_get(state.batch_stats), float(m["loss"])))
    (p1, s1, l1), (p8, s8, l8) = results
    np.testing.assert_allclose(l1, l8, rtol=1e-5)
    for a, b in zip(jax.tree.leaves((p1, s1)), jax.tree.leaves((p8, s8)), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def test_weighted_loss_reports_every_term_and_masks_padding():
    ns = {"batch": {"labels": jnp.eye(3)[jnp.array([0, 1, 2, 0])]},
          "student": {"logits": jnp.array([[2.0, 0, 0], [0, 1.0, 0], [0, 0, 3.0], [9.0, -9, 0]])},
          "teacher": {"t": {"logits": jnp.array([[1.0, 0, 0], [0, 2.0, 0], [0, 0, 1.0], [0, 0, 0]])}}}
    terms = (LossTerm.from_config("ce", dict(fn="softmax_xent", weight=0.25, inputs=["student.logits", "batch.labels"])),
             LossTerm.from_config("kd", dict(fn="kd_kl", weight=0.75, kw=dict(temperature=2.0),
                                             inputs=["student.logits", "teacher.t.logits"])))
    mask = jnp.array([1.0, 1.0, 1.0, 0.0])  # the last row is padding
    total, m = weighted_loss(terms, ns, mask)
    z, y = np.asarray(ns["student"]["logits"][:3], np.float64), np.asarray(ns["batch"]["labels"][:3])
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    ce = -(y * logp).sum(-1).mean()
    zt = np.asarray(ns["teacher"]["t"]["logits"][:3], np.float64) / 2
    pt = np.exp(zt) / np.exp(zt).sum(-1, keepdims=True)
    ls = z / 2 - np.log(np.exp(z / 2).sum(-1, keepdims=True))
    kd = 4 * (pt * (np.log(pt) - ls)).sum(-1).mean()
    np.testing.assert_allclose(float(m["loss/ce"]), ce, rtol=1e-5)
    np.testing.assert_allclose(float(m["loss/kd"]), kd, rtol=1e-5)
    np.testing.assert_allclose(float(total), 0.25 * ce + 0.75 * kd, rtol=1e-5)
    np.testing.assert_allclose(float(m["loss"]), float(total))


def test_bad_loss_configs_name_the_field():
    with pytest.raises(ValueError, match=r"losses.x.fn='nope'"):
        LossTerm.from_config("x", dict(fn="nope", inputs=["a"]))
    with pytest.raises(ValueError, match=r"losses.x: unknown field\(s\) \['wieght'\]"):
        LossTerm.from_config("x", dict(fn="kd_kl", wieght=1.0, inputs=["a"]))
    with pytest.raises(KeyError, match="no 'feats' at student; has \\['logits'\\]"):
        resolve({"student": {"logits": 1}}, "student.feats.frames")
