"""MRKD (configs/mrkd.py) inside the real train step: mutual-KL terms vs NumPy, stop-gradient
targets (each peer's update is the gradient of its own objective only), independence of the
`alone` peers, and 8-device data parallelism equal to 1 device for the joint step.

Peers: three tiny temporal CNNs on logmel / MFCC+deltas / STFT front-ends of 8 kHz synthetic
tones (no data files). One program carries three mutual terms at once (DML mean, DML sum,
ensemble; different weights and T = 2), so one compiled step checks all three.
"""

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from configs import mrkd
from kdjax.train.forward import forward, init_variables
from kdjax.train.program import build_program
from kdjax.train.setup import make_optimizer
from kdjax.train.state import TrainState
from kdjax.train.step import jit_train_step

T = 2.0
WEIGHTS = {"mutual_mean": 0.5, "mutual_sum": 0.25, "mutual_ens": 0.75}
N = 4000  # 0.5 s at 8 kHz


def _batch(b=16, seed=0):
    k = jax.random.key(seed)
    t = jnp.arange(N) / 8000.0
    freqs = 200.0 + 150.0 * (jnp.arange(b) % 10) + 20.0 * seed
    audio = 0.3 * jnp.sin(2 * jnp.pi * freqs[:, None] * t) + 0.05 * jax.random.normal(k, (b, N))
    return {"audio": audio.astype(jnp.float32), "labels": jax.nn.one_hot((jnp.arange(b) + seed) % 10, 10),
            "mask": jnp.ones(b, jnp.float32)}


def _joint_cfg(*, three_terms: bool, sgd: bool):
    c = copy.deepcopy(mrkd.get_config("variant=tiny,data=fsdd,reps=logmel+mfcc+stft,seeds=1").stages.joint)
    with c.unlocked():
        if three_terms:
            base = dict(c.losses.mutual)
            c.losses = {k: v for k, v in c.losses.items() if k != "mutual"}
            for name, red, tgt in (("mutual_mean", "mean", "peers"), ("mutual_sum", "sum", "peers"),
                                   ("mutual_ens", "mean", "ensemble")):
                c.losses[name] = dict(base, weight=WEIGHTS[name],
                                      kw=dict(temperature=T, reduction=red, target=tgt, t2_scale=True))
        if sgd:  # the update is then -lr * gradient exactly: the step's gradients can be read back
            c.optimizer = dict(name="sgd", kw={}, grad_clip=0.0)
            c.schedule = dict(name="constant", lr=1.0, warmup_steps=0)
    return c


def _setup(cfg):
    prog = build_program(cfg, 10, 8000)
    params, stats = init_variables(prog, jax.random.key(0), N)
    tx, _ = make_optimizer(cfg)
    return prog, TrainState.create(params=params, batch_stats=stats, tx=tx)


def _np_log_softmax(z):
    z = np.asarray(z, np.float64)
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _np_mutual(z, *, reduction, target, temperature):
    """[K, B]: hand-computed DML / ensemble mutual KL (times T^2), NumPy float64."""
    lp = _np_log_softmax(np.asarray(z, np.float64) / temperature)
    p = np.exp(lp)
    k = z.shape[0]
    out = np.zeros(z.shape[:2])
    for i in range(k):
        others = [j for j in range(k) if j != i]
        if target == "peers":
            kls = [(p[j] * (lp[j] - lp[i])).sum(-1) for j in others]
            out[i] = sum(kls) / (k - 1 if reduction == "mean" else 1)
        else:
            pe = np.mean([p[j] for j in others], axis=0)
            out[i] = (pe * (np.log(pe) - lp[i])).sum(-1)
    return out * temperature**2


@pytest.fixture(scope="module")
def one_sgd_step():
    """One SGD step (lr 1) of the three-term joint program on 1 device, and the references.

    Returns a dict: prog, batch, rng, before/after (params), stats (batch_stats before),
    z (peers' train-mode logits `[K, B, C]` the step saw), own/through (gradients, see
    `_peer_objective_grads`), metrics (the step's)."""
    cfg = _joint_cfg(three_terms=True, sgd=True)
    prog, state = _setup(cfg)
    batch = _batch()
    rng = jax.random.key(3)
    before = jax.device_get(state.params)
    stats = jax.device_get(state.batch_stats)
    z, own, through = _peer_objective_grads(prog, before, stats, batch, rng)
    new_state, m = jit_train_step(prog)(state, {}, batch, rng)
    return dict(prog=prog, cfg=cfg, batch=batch, rng=rng, before=before, stats=stats, z=np.asarray(z),
                own=jax.device_get(own), through=jax.device_get(through),
                after=jax.device_get(new_state.params), metrics=jax.device_get(m))


def test_mutual_terms_in_the_step_equal_numpy(one_sgd_step):
    r = one_sgd_step
    prog, z, batch, m = r["prog"], r["z"], r["batch"], r["metrics"]
    assert prog.deployed == ("logmel", "mfcc", "stft") and z.shape == (3, 16, 10)
    y = np.asarray(batch["labels"], np.float64)
    lp = _np_log_softmax(z)
    expected_total = 0.0
    for k, name in enumerate(prog.deployed):
        ce = -(y * lp[k]).sum(-1).mean()
        np.testing.assert_allclose(m[f"loss/ce_{name}"], ce, rtol=1e-5)
        expected_total += ce
    for term, red, tgt in (("mutual_mean", "mean", "peers"), ("mutual_sum", "sum", "peers"),
                           ("mutual_ens", "mean", "ensemble")):
        ref = _np_mutual(z, reduction=red, target=tgt, temperature=T).mean(axis=1)  # [K]
        for k in range(3):
            np.testing.assert_allclose(m[f"loss/{term}/{k}"], ref[k], rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(m[f"loss/{term}"], ref.sum(), rtol=1e-4)
        expected_total += WEIGHTS[term] * ref.sum()
        assert ref.min() > 1e-6, "peers disagree, so every term is non-trivial"
    # DML sum = (K - 1) x DML mean; the ensemble term is below the mean of the KLs (convexity).
    np.testing.assert_allclose(m["loss/mutual_sum"], 2 * m["loss/mutual_mean"], rtol=1e-5)
    assert m["loss/mutual_ens"] <= m["loss/mutual_mean"] + 1e-6
    np.testing.assert_allclose(m["loss"], expected_total, rtol=1e-4)


def _peer_objective_grads(prog, params, stats, batch, rng):
    """(peers' logits `[K, B, C]`, own, through): gradients w.r.t. every peer of
    sum_i [CE_i + sum_terms w * M_i] (hand-written jnp), with the targets constants (`own`:
    then the gradient w.r.t. peer i is that of peer i's own objective) or differentiated
    through (`through`: the gradient a step without stop_gradient on the targets would take).
    """

    def loss(p, stop_targets):
        variables = {n: {"params": p[n], "batch_stats": stats[n]} for n in prog.models}
        ns, _ = forward(prog, variables, batch, jax.random.fold_in(rng, 0), train=True)
        z = ns["peers"]["logits"]
        lp = jax.nn.log_softmax(z, -1)
        total = -jnp.sum(batch["labels"][None] * lp, -1).mean(1).sum()
        lpt = jax.nn.log_softmax(z / T, -1)  # students
        tgt = jax.lax.stop_gradient(lpt) if stop_targets else lpt
        pt = jnp.exp(tgt)
        k = z.shape[0]
        for term, red, kind in (("mutual_mean", "mean", "peers"), ("mutual_sum", "sum", "peers"),
                                ("mutual_ens", "mean", "ensemble")):
            for i in range(k):
                others = [j for j in range(k) if j != i]
                if kind == "peers":
                    mi = sum(jnp.sum(pt[j] * (tgt[j] - lpt[i]), -1) for j in others)
                    mi = mi / (k - 1) if red == "mean" else mi
                else:
                    pe = sum(pt[j] for j in others) / (k - 1)
                    mi = jnp.sum(pe * (jnp.log(pe) - lpt[i]), -1)
                total = total + WEIGHTS[term] * T**2 * mi.mean()
        return total, z

    @jax.jit
    def both(p):
        own, z = jax.grad(loss, has_aux=True)(p, True)
        return z, own, jax.grad(loss, has_aux=True)(p, False)[0]

    return both(params)


def test_each_peer_gets_only_its_own_gradient_stop_gradient_targets(one_sgd_step):
    """The step's update of peer i (SGD, lr 1: params - gradient) equals the gradient of peer i's
    OWN objective CE_i + w M_i with the other peers' distributions as constants. Without
    stop_gradient on the targets, peer i would also receive the gradient of the other peers'
    terms M_j (through p_i as their target): that gradient is computed too and must differ."""
    r = one_sgd_step
    prog, before, after, own, through = r["prog"], r["before"], r["after"], r["own"], r["through"]
    for name in prog.deployed:
        step_grad = jax.tree.map(lambda a, b: np.asarray(a, np.float64) - np.asarray(b, np.float64),
                                 before[name], after[name])
        g_own, g_thr = jax.tree.leaves(own[name]), jax.tree.leaves(through[name])
        scale = max(float(np.abs(g).max()) for g in g_own)
        for s, g in zip(jax.tree.leaves(step_grad), g_own, strict=True):
            np.testing.assert_allclose(s, g, atol=2e-4 * scale, rtol=2e-3)
        diff = max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in zip(g_own, g_thr, strict=True))
        assert diff > 1e-2 * scale, f"{name}: the test cannot tell stopped from unstopped targets"


def test_alone_peers_are_independent(one_sgd_step):
    """In the `alone` stage (K peers, CE only, one step), perturbing peer B's parameters leaves
    peer A's update bit-for-bit unchanged: the shared step is K independent trainings."""
    c = copy.deepcopy(mrkd.get_config("variant=tiny,data=fsdd,reps=logmel+mfcc+stft,seeds=1").stages.alone)
    assert "mutual" not in c.losses and not c.optimizer.grad_clip
    r = one_sgd_step
    prog = build_program(c, 10, 8000)
    assert prog.deployed == r["prog"].deployed  # same peers: the joint program's parameters fit
    tx, _ = make_optimizer(c)
    step = jit_train_step(prog)
    batch = _batch(seed=1)
    outs = []
    for scale in (1.0, 1.5):
        params = dict(r["before"], stft=jax.tree.map(lambda x, s=scale: x * s, r["before"]["stft"]))
        st = TrainState.create(params=params, batch_stats=r["stats"], tx=tx)
        new, _ = step(st, {}, batch, jax.random.key(0))
        outs.append(jax.device_get(new.params))
    for name in ("logmel", "mfcc"):
        for a, b in zip(jax.tree.leaves(outs[0][name]), jax.tree.leaves(outs[1][name]), strict=True):
            np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(outs[0]["stft"]),
                                                        jax.tree.leaves(outs[1]["stft"]), strict=True))


def test_joint_step_data_parallel_8_devices_equals_1_device(one_sgd_step):
    """The same joint step (three mutual terms, batch 16) on 8 simulated devices, batch sharded
    on "data", gives the metrics and parameters of the 1-device step."""
    assert jax.device_count() == 8, "tests/conftest.py simulates 8 CPU devices"
    r = one_sgd_step
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    tx, _ = make_optimizer(r["cfg"])
    state = jax.device_put(TrainState.create(params=r["before"], batch_stats=r["stats"], tx=tx),
                           NamedSharding(mesh, P()))
    batch = jax.device_put(r["batch"], NamedSharding(mesh, P("data")))
    new, m = jit_train_step(r["prog"])(state, {}, batch, r["rng"])
    m = jax.device_get(m)
    for k in ("loss", "loss/mutual_mean", "loss/mutual_sum", "loss/mutual_ens", "loss/mutual_mean/2"):
        np.testing.assert_allclose(m[k], r["metrics"][k], rtol=1e-5, atol=1e-7)
    for a, b in zip(jax.tree.leaves(jax.device_get(new.params)), jax.tree.leaves(r["after"]), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def test_peer_option_selects_the_2d_cnn_and_its_forward_shape():
    """`peer=cnn2d` puts kdjax.models.cnn2d peers (PEER_2D widths) in both arms; their logits
    are [B, C] from [B, T, F] features; an unknown peer names the argument."""
    c = mrkd.get_config("variant=tiny,data=fsdd,peer=cnn2d")
    for stage in ("alone", "joint"):
        for rep, node in c.stages[stage].models.items():
            assert node.model == "cnn2d", (stage, rep)
            assert tuple(node.kw.widths) == mrkd.PEER_2D["tiny"]["widths"]
    from kdjax.models import cnn2d

    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 50, 64)), jnp.float32)
    m = cnn2d.Model(num_classes=10, **mrkd.PEER_2D["tiny"])
    logits, feats = m.apply(m.init(jax.random.PRNGKey(0), x, train=False), x, train=False)
    assert logits.shape == (2, 10)
    assert feats["frames"].shape == (2, 50 // 4, 8)  # two 2x2 poolings, last width 8
    with pytest.raises(ValueError, match="peer='resnet'"):
        mrkd.get_config("peer=resnet")
