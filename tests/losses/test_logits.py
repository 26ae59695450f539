"""kdjax.losses.logits and masked_mean vs NumPy float64 references written from the papers' formulas."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from kdjax import losses as L
from tests.losses._ref import J

RTOL = 1e-5  # float32 JAX vs float64 NumPy on O(1) inputs
ATOL = 1e-6


def _rng(seed=0):
    return np.random.default_rng(seed)


def np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def np_kd_kl(s, t, T, t2=True):
    pt = np.exp(np_log_softmax(t / T))
    kl = (pt * (np_log_softmax(t / T) - np_log_softmax(s / T))).sum(-1)
    return kl * T**2 if t2 else kl


def np_sigmoid(z):
    return 1 / (1 + np.exp(-z))


# ---------------------------------------------------------------- masked_mean
def test_masked_mean_basic_and_all_masked():
    x = np.arange(6.0).reshape(2, 3)
    assert float(J.masked_mean(x)) == pytest.approx(2.5)
    assert float(J.masked_mean(x, np.array([1, 0]))) == pytest.approx(1.0)  # [B] mask
    np.testing.assert_allclose(
        J.masked_mean(x, np.array([[1, 0, 1], [0, 0, 0]]), axis=-1), [1.0, 0.0]
    )
    assert float(J.masked_mean(x, np.zeros(2))) == 0.0  # all masked -> 0, not NaN


def test_masked_mean_garbage_in_masked_entries_has_no_effect_on_value_or_grad():
    x = jnp.array([1.0, 2.0, jnp.nan, jnp.inf])
    m = jnp.array([1, 1, 0, 0])
    assert float(J.masked_mean(x, m)) == pytest.approx(1.5)
    g = jax.grad(lambda x: J.masked_mean(x, m))(x)
    np.testing.assert_allclose(g, [0.5, 0.5, 0, 0])


def test_masked_mean_bad_mask_raises():
    with pytest.raises(ValueError, match="mask"):
        J.masked_mean(jnp.ones((2, 3)), jnp.ones(4))


# ---------------------------------------------------------------- softmax / sigmoid xent
def test_softmax_xent_vs_numpy_and_mask():
    r = _rng(1)
    z, y = r.normal(size=(5, 7)), r.dirichlet(np.ones(7), size=5)
    got = jax.jit(L.softmax_xent)(z.astype(np.float32), y.astype(np.float32))
    np.testing.assert_allclose(got, -(y * np_log_softmax(z)).sum(-1), rtol=RTOL)
    m = r.random((5, 7)) > 0.3
    m[:, 0] = True
    zm = np.where(m, z, -np.inf)
    ref = -(np.where(m, y * np_log_softmax(zm), 0)).sum(-1)
    np.testing.assert_allclose(
        J.softmax_xent(z.astype(np.float32), y.astype(np.float32), mask=m), ref, rtol=RTOL
    )


def test_sigmoid_xent_vs_numpy_mean_sum_mask():
    r = _rng(2)
    z, y = 3 * r.normal(size=(4, 6)), r.random((4, 6))
    p = np_sigmoid(z)
    per = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    z32, y32 = z.astype(np.float32), y.astype(np.float32)
    np.testing.assert_allclose(J.sigmoid_xent(z32, y32), per.mean(-1), rtol=RTOL)
    np.testing.assert_allclose(J.sigmoid_xent(z32, y32, reduction="sum"), per.sum(-1), rtol=RTOL)
    m = (r.random((4, 6)) > 0.5).astype(np.float32)
    m[3] = 0
    ref = np.where(m.sum(-1) > 0, (per * m).sum(-1) / np.maximum(m.sum(-1), 1), 0)
    np.testing.assert_allclose(J.sigmoid_xent(z32, y32, mask=m), ref, rtol=RTOL, atol=ATOL)
    with pytest.raises(ValueError, match="reduction"):
        J.sigmoid_xent(z32, y32, reduction="max")


def test_shape_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"logits must have shape \[B, C\]"):
        J.softmax_xent(jnp.ones(3), jnp.ones(3))
    with pytest.raises(ValueError, match="student_logits and teacher_logits"):
        J.kd_kl(jnp.ones((2, 3)), jnp.ones((2, 4)))
    with pytest.raises(ValueError, match=r"mask must have shape \[B, C\]"):
        J.sigmoid_xent(jnp.ones((2, 3)), jnp.ones((2, 3)), mask=jnp.ones(2))
    with pytest.raises(ValueError, match="temperature"):
        J.kd_kl(jnp.ones((2, 3)), jnp.ones((2, 3)), temperature=0.0)


# ---------------------------------------------------------------- kd_kl
def test_kd_kl_hand_computed_two_classes():
    # s = [0, 0] -> p_s = [.5, .5]; t = [log 3, 0] -> p_t = [.75, .25]
    # KL = .75 ln(.75/.5) + .25 ln(.25/.5) = .75 ln 1.5 - .25 ln 2
    s = jnp.zeros((1, 2))
    t = jnp.array([[math.log(3.0), 0.0]])
    hand = 0.75 * math.log(1.5) - 0.25 * math.log(2.0)
    assert float(J.kd_kl(s, t)[0]) == pytest.approx(hand, rel=1e-6)
    # T = 2 doubles nothing by hand: t/2 = [ln sqrt3, 0] -> p_t = [sqrt3/(1+sqrt3), 1/(1+sqrt3)]
    a = math.sqrt(3) / (1 + math.sqrt(3))
    hand2 = a * math.log(a / 0.5) + (1 - a) * math.log((1 - a) / 0.5)
    assert float(J.kd_kl(s, t, temperature=2.0)[0]) == pytest.approx(4 * hand2, rel=1e-6)
    assert float(J.kd_kl(s, t, temperature=2.0, t2_scale=False)[0]) == pytest.approx(
        hand2, rel=1e-6
    )


def test_kd_kl_vs_numpy_random():
    r = _rng(3)
    s, t = 2 * r.normal(size=(6, 10)), 2 * r.normal(size=(6, 10))
    for T in (1.0, 4.0):
        got = jax.jit(lambda a, b, T=T: L.kd_kl(a, b, temperature=T))(
            s.astype(np.float32), t.astype(np.float32)
        )
        np.testing.assert_allclose(got, np_kd_kl(s, t, T), rtol=RTOL, atol=ATOL)


def test_kd_kl_zero_when_equal_up_to_shift():
    z = jnp.asarray(_rng(4).normal(size=(3, 5)), jnp.float32)
    np.testing.assert_allclose(J.kd_kl(z, z + 7.0, temperature=3.0), 0.0, atol=1e-6)


def test_kd_kl_high_temperature_limit_is_logit_matching():
    r = _rng(5)
    s, t = r.normal(size=(4, 6)), r.normal(size=(4, 6))
    C = s.shape[-1]
    limit = (((s - s.mean(-1, keepdims=True)) - (t - t.mean(-1, keepdims=True))) ** 2).sum(-1) / (
        2 * C
    )
    with jax.enable_x64(True):
        got = J.kd_kl(jnp.asarray(s), jnp.asarray(t), temperature=1e3)
    np.testing.assert_allclose(got, limit, rtol=1e-2)


def test_kd_kl_teacher_gets_no_gradient():
    s, t = jnp.ones((2, 3)), jnp.arange(6.0).reshape(2, 3)
    g = jax.grad(lambda t: J.kd_kl(s, t).sum())(t)
    assert np.all(np.asarray(g) == 0)


# ---------------------------------------------------------------- kd_bernoulli_kl
def test_kd_bernoulli_kl_vs_numpy():
    r = _rng(6)
    s, t = 3 * r.normal(size=(5, 8)), 3 * r.normal(size=(5, 8))
    T = 2.0
    pt, ps = np_sigmoid(t / T), np_sigmoid(s / T)
    per = pt * np.log(pt / ps) + (1 - pt) * np.log((1 - pt) / (1 - ps))
    s32, t32 = s.astype(np.float32), t.astype(np.float32)
    np.testing.assert_allclose(
        J.kd_bernoulli_kl(s32, t32, temperature=T), T**2 * per.mean(-1), rtol=RTOL, atol=ATOL
    )
    np.testing.assert_allclose(
        J.kd_bernoulli_kl(s32, t32, temperature=T, t2_scale=False, reduction="sum"),
        per.sum(-1),
        rtol=RTOL,
        atol=ATOL,
    )
    np.testing.assert_allclose(J.kd_bernoulli_kl(s32, s32, temperature=T), 0.0, atol=1e-6)
    # hand: s = 0 -> ps = .5; t = ln 3 -> pt = .75; KL = .75 ln 1.5 + .25 ln .5
    hand = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    got = J.kd_bernoulli_kl(jnp.zeros((1, 1)), jnp.full((1, 1), math.log(3.0)))
    assert float(got[0]) == pytest.approx(hand, rel=1e-6)


# ---------------------------------------------------------------- mutual_kl
def np_mutual(z, T, reduction, target):
    K = z.shape[0]
    logp = np_log_softmax(z / T)
    p = np.exp(logp)
    out = np.zeros(z.shape[:2])
    for i in range(K):
        js = [j for j in range(K) if j != i]
        if target == "peers":
            terms = [(p[j] * (logp[j] - logp[i])).sum(-1) for j in js]
            out[i] = np.sum(terms, 0) / (K - 1 if reduction == "mean" else 1)
        else:
            q = np.mean([p[j] for j in js], 0)
            out[i] = (q * (np.log(q) - logp[i])).sum(-1)
    return out * T**2


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("target", ["peers", "ensemble"])
def test_mutual_kl_vs_numpy(reduction, target):
    z = 2 * _rng(7).normal(size=(3, 4, 5))
    got = jax.jit(lambda z: L.mutual_kl(z, temperature=2.0, reduction=reduction, target=target))(
        z.astype(np.float32)
    )
    np.testing.assert_allclose(got, np_mutual(z, 2.0, reduction, target), rtol=RTOL, atol=ATOL)
    got_list = J.mutual_kl(
        list(z.astype(np.float32)), temperature=2.0, reduction=reduction, target=target
    )
    np.testing.assert_allclose(got_list, got, rtol=1e-6, atol=1e-7)


def test_mutual_kl_two_peers_equals_kd_kl_and_gradient_only_to_own_peer():
    z = jnp.asarray(_rng(8).normal(size=(2, 3, 4)), jnp.float32)
    out = J.mutual_kl(z)
    np.testing.assert_allclose(out[0], J.kd_kl(z[0], z[1]), rtol=1e-6)
    np.testing.assert_allclose(out[1], J.kd_kl(z[1], z[0]), rtol=1e-6)
    # d L_0 / d z_1 = 0: peer 1 is only a (stop-gradient) target in L_0.
    g = jax.grad(lambda z: J.mutual_kl(z)[0].sum())(z)
    assert np.all(np.asarray(g[1]) == 0) and np.any(np.asarray(g[0]) != 0)
    with pytest.raises(ValueError, match="K >= 2"):
        J.mutual_kl(z[:1])


# ---------------------------------------------------------------- gradients, jit, vmap
GRAD_CASES = {
    "softmax_xent": lambda a, b: J.softmax_xent(a, jax.nn.softmax(b)),
    "softmax_xent_mask": lambda a, b: J.softmax_xent(
        a, jax.nn.softmax(b), mask=jnp.array([[1, 1, 0, 1]] * 3)
    ),
    "sigmoid_xent": lambda a, b: J.sigmoid_xent(a, jax.nn.sigmoid(b)),
    "kd_kl": lambda a, b: J.kd_kl(a, b, temperature=2.0),
    "kd_bernoulli_kl": lambda a, b: J.kd_bernoulli_kl(a, b, temperature=2.0),
    # Peer 0's row only: its targets (peers 1, 2) do not depend on `a`, so the stop-gradient
    # gradient equals the true derivative that finite differences measure.
    "mutual_kl": lambda a, b: J.mutual_kl(jnp.stack([a, b, 2 * b]))[0],
    "mutual_kl_ens": lambda a, b: J.mutual_kl(jnp.stack([a, b, -b]), target="ensemble")[0],
    "masked_mean": lambda a, b: J.masked_mean(a * b, jnp.array([1, 0, 1])),
}


@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_grads_match_finite_differences(name):
    fn = GRAD_CASES[name]
    r = _rng(9)
    with jax.enable_x64(True):
        a, b = jnp.asarray(r.normal(size=(3, 4))), jnp.asarray(r.normal(size=(3, 4)))
        f = jax.jit(lambda a: jnp.sum(fn(a, b)))
        check_grads(f, (a,), order=1, modes=("rev",))
        assert np.all(np.isfinite(jax.grad(f)(a)))


def test_vmap_equals_loop():
    # All cases in one program each way (one compile instead of 2 per case).
    r = _rng(10)
    a = jnp.asarray(r.normal(size=(2, 3, 4)), jnp.float32)
    b = jnp.asarray(r.normal(size=(2, 3, 4)), jnp.float32)
    all_cases = lambda a, b: {k: fn(a, b) for k, fn in GRAD_CASES.items()}  # noqa: E731
    got = jax.jit(jax.vmap(all_cases))(a, b)
    one = jax.jit(all_cases)
    ref = [one(a[i], b[i]) for i in range(2)]
    for k in GRAD_CASES:
        np.testing.assert_allclose(
            got[k], jnp.stack([ref[0][k], ref[1][k]]), rtol=1e-5, atol=1e-6, err_msg=k
        )
