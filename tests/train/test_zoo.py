"""Model zoo contract: shapes and feats keys, train/eval, finite nonzero gradients, pooling identities.

Tiny configs; each model runs ONE jitted function (eval forward, train forward with the BatchNorm
update, and the gradient of a cross-entropy loss), so each test compiles once. XLA:CPU compile
time dominates, so (measured on the shared 2-core machine, CPU seconds):
- the jits compile with LLVM optimisation off (tests/conftest.py `FAST_COMPILE`, in XLA_FLAGS for
  every test; ~35% less here, same math);
- the variables are not made by `model.init` inside the jit: every random parameter leaf costs
  ~70-90 ms of compile (15 `truncated_normal` draws: 1.4 s; a tiny transformer's jitted init
  2.5 s of its 4.7 s), so `variables()` takes the shapes `init` declares (`jax.eval_shape`,
  which traces the model's initialisers) and fills them in NumPy: fan-in-scaled normal kernels,
  zero biases/means, unit scales/variances. The real initialisers run in
  `test_real_init` (the custom initialisers: LSTM-P's forget bias, orthogonal recurrent
  weights, the transformer's class token and positional embeddings).
- keys are "rbg" where one is drawn under jit: with jax 0.10's default (partitionable) threefry,
  a jitted `init` of a 2-block CNN compiled in 8.5 s here, 1.6 s with rbg keys.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kdjax.models import build, count_params, layers, stats_pool_net
from kdjax.models.cp_resnet import rho_kernels
from kdjax.models.transformer import frame_patches

B, T, F, C = 2, 50, 40, 5
ALL = [
    "cp_resnet",
    "cnn2d",
    "mobile_fcn",
    "crnn",
    "lstm_p",
    "att_rnn",
    "mhatt_rnn",
    "transformer",
    "stats_pool_net",
    "attention_head",
]


def key(seed):
    return jax.random.key(seed, impl="rbg")


def features(t=T, f=F, seed=0):
    return np.random.default_rng(seed).standard_normal((B, t, f)).astype(np.float32)


def softmax(z, axis=-1):
    e = np.exp(z - z.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def variables(model, x):
    """Variables with the shapes `model.init` declares, filled in NumPy (module docstring)."""
    shapes = jax.eval_shape(lambda: model.init(key(0), x, train=False))
    rng = np.random.default_rng(0)

    def fill(path, s):
        name = getattr(path[-1], "key", "")
        if name in ("scale", "var"):
            return np.ones(s.shape, np.float32)
        if name in ("bias", "mean"):
            return np.zeros(s.shape, np.float32)
        fan_in = math.prod(s.shape[:-1]) or 1
        return (rng.standard_normal(s.shape) / math.sqrt(fan_in)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def run(model, x, extra=None):
    """eval apply + train apply/grad (+ `extra(variables)`) in one jit.

    Returns (variables, eval_out, train_out, grads, new_stats[, extra_out]).
    """
    v = variables(model, x)

    @jax.jit
    def f(v, x):
        ev = model.apply(v, x, train=False)

        def loss(p):
            (logits, feats), upd = model.apply(
                {**v, "params": p}, x, train=True, rngs={"dropout": key(1)}, mutable=["batch_stats"]
            )
            y = jax.nn.one_hot(jnp.arange(logits.shape[0]) % logits.shape[1], logits.shape[1])
            return -(y * jax.nn.log_softmax(logits)).sum(-1).mean(), ((logits, feats), upd)

        g, (tr, upd) = jax.grad(loss, has_aux=True)(v["params"])
        return (ev, tr, g, upd) + ((extra(v),) if extra is not None else ())

    # NumPy from here on: every eager jnp op on a new shape would be one more XLA compile.
    return jax.device_get((v,) + f(v, x))


def check_common(v, ev, tr, g, upd, num_classes=C):
    """Both modes: float32 finite logits [B, C] and feats; every gradient leaf finite and nonzero; BN moments move."""
    for logits, feats in (ev, tr):
        assert logits.shape == (B, num_classes) and logits.dtype == np.float32
        assert np.all(np.isfinite(logits))
        for k, a in feats.items():
            assert a.dtype == np.float32, k
            assert np.all(np.isfinite(a)), k
    norms = {
        jax.tree_util.keystr(p): float(np.linalg.norm(x))
        for p, x in jax.tree_util.tree_leaves_with_path(g)
    }
    assert all(math.isfinite(n) for n in norms.values()), norms
    assert sum(n * n for n in norms.values()) > 0
    zero = [k for k, n in norms.items() if n == 0.0]
    assert not zero, f"parameters without gradient: {zero}"
    if "batch_stats" in v:  # train mode updated the running moments
        old, new = jax.tree.leaves(v["batch_stats"]), jax.tree.leaves(upd["batch_stats"])
        assert any(not np.allclose(a, b) for a, b in zip(old, new, strict=True))


def close(a, b, atol=1e-5, rtol=1e-5):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=atol, rtol=rtol)


# ------------------------------------------------------------------------------------------------
# 2-D CNNs


def reference_rho_table(rho):
    """kkoutini/cpjku_dcase19 `get_model_based_on_rho` (depth 26), transcribed."""
    e = rho - 7
    s1k1 = [3, 3 - (-e > 6) * 2, 3 - (-e > 4) * 2, 3 - (-e > 2) * 2]
    s1k2 = [1, 3 - (-e > 5) * 2, 3 - (-e > 3) * 2, 3 - (-e > 1) * 2]
    s2k1 = [3 - (-e > 0) * 2, 1 + (e > 1) * 2, 1 + (e > 3) * 2, 1 + (e > 5) * 2]
    s2k2 = [1 + (e > 0) * 2, 1 + (e > 2) * 2, 1 + (e > 4) * 2, 1 + (e > 6) * 2]
    s3k1 = [1 + (e > 7) * 2, 1 + (e > 9) * 2, 1 + (e > 11) * 2, 1 + (e > 13) * 2]
    s3k2 = [1 + (e > 8) * 2, 1 + (e > 10) * 2, 1 + (e > 12) * 2, 1 + (e > 14) * 2]
    return [list(zip(a, b, strict=True)) for a, b in ((s1k1, s1k2), (s2k1, s2k2), (s3k1, s3k2))]


@pytest.mark.parametrize("rho", range(0, 26))
def test_cp_resnet_rho_kernels_equal_reference(rho):
    assert rho_kernels(rho) == reference_rho_table(rho)


def test_cp_resnet():
    m = build(
        "cp_resnet",
        num_classes=C,
        base_channels=4,
        rho=2,
        blocks_per_stage=(1, 1, 1),
        maxpool=((0, 1), (), ()),
    )
    v, ev, tr, g, upd = run(m, features())
    check_common(v, ev, tr, g, upd)
    _, feats = ev
    # in_c: floor((50 - 3) / 2) + 1 = 24 frames, floor((40 - 3) / 2) + 1 = 19 bins; 2x2 pools
    # before and after the first block.
    assert feats["fmap0"].shape == (B, 6, 4, 4)
    assert feats["fmap2"].shape == (B, 6, 4, 16)
    assert feats["frames"].shape == (B, 6, 16) and feats["embedding"].shape == (B, 16)
    close(feats["frames"], feats["fmap2"].mean(2))
    close(feats["embedding"], feats["frames"].mean(1))
    # rho=2: the first block is (3, 1), then two 3x3 convs, the rest 1x1.
    p = v["params"]
    ks = [p[f"stage{s}_block1"][f"conv{c}"]["kernel"].shape[:2] for s in (1, 2, 3) for c in (1, 2)]
    assert ks == [(3, 3), (1, 1), (3, 3), (3, 3), (1, 1), (1, 1)]


def test_cnn2d():
    m = build("cnn2d", num_classes=C, widths=(4, 8), embed_dim=6)
    v, ev, tr, g, upd = run(m, features())
    check_common(v, ev, tr, g, upd)
    _, feats = ev
    assert feats["fmap0"].shape == (B, 25, 20, 4) and feats["fmap1"].shape == (B, 12, 10, 8)
    assert feats["frames"].shape == (B, 12, 8) and feats["embedding"].shape == (B, 6)
    close(feats["frames"], feats["fmap1"].mean(2))
    close(feats["pooled"], feats["frames"].max(1) + feats["frames"].mean(1))  # PANNs global pooling
    assert feats["embedding"].min() >= 0  # ReLU(fc1)


@pytest.mark.parametrize("block", ["separable", "inverted_residual"])
def test_mobile_fcn(block):
    m = build(
        "mobile_fcn",
        num_classes=C,
        widths=(4, 4),
        pools=((2, 2), (2, 2)),
        full_conv_layers=1,
        block=block,
        expansion=2,
    )
    v, ev, tr, g, upd = run(m, features())
    check_common(v, ev, tr, g, upd)
    _, feats = ev
    assert [feats[f"fmap{i}"].shape for i in range(2)] == [(B, 25, 20, 4), (B, 12, 10, 4)]
    close(feats["frames"], feats["fmap1"].mean(2))
    close(feats["embedding"], feats["frames"].mean(1))
    dw = v["params"]["layer1"]["depthwise"]["kernel"]
    assert dw.shape[2] == 1  # depthwise: one input channel per group


# ------------------------------------------------------------------------------------------------
# RNNs


@pytest.mark.parametrize("front", ["1d", "2d"])
def test_crnn(front):
    m = build(
        "crnn",
        num_classes=C,
        front=front,
        conv_widths=(4,),
        rnn_units=3,
        time_strides=(2,),
        freq_pools=(8,),
    )
    v, ev, tr, g, upd = run(m, features(t=20))
    # Includes the first conv layer's kernel: the gradient crosses the GRU.
    check_common(v, ev, tr, g, upd)
    _, feats = ev
    t_out = 10 if front == "1d" else 20
    assert feats["frames"].shape == (B, t_out, 6)
    close(feats["embedding"], feats["frames"].mean(1))
    assert np.linalg.norm(g["conv0"]["kernel"]) > 0


def test_lstm_p_last_pooling_and_causality():
    m = build("lstm_p", num_classes=C, units=6, proj=3, num_layers=2)
    x = features(t=20)
    x_late = x.copy()
    x_late[:, 12:] += 5.0  # changed from frame 12 on
    v, ev, tr, g, upd, (_, f2) = run(m, x, extra=lambda v: m.apply(v, x_late, train=False))
    check_common(v, ev, tr, g, upd)
    _, feats = ev
    assert feats["frames"].shape == (B, 20, 3) and feats["embedding"].shape == (B, 3)
    close(feats["embedding"], feats["frames"][:, -1])
    # The gradient reaches the first layer.
    assert np.linalg.norm(g["lstm0_input"]["kernel"]) > 0
    assert v["params"]["lstm0"]["recurrent"]["kernel"].shape == (3, 24)  # W_r: proj -> 4 units
    # Unidirectional: frames before t0 do not depend on inputs from t0 on.
    close(f2["frames"][:, :12], feats["frames"][:, :12])
    assert not np.allclose(f2["frames"][:, 12:], feats["frames"][:, 12:])


def test_att_rnn():
    m = build(
        "att_rnn", num_classes=C, conv_filters=(3, 1), rnn_units=4, rnn_layers=1, dense_units=(8, 4)
    )
    v, ev, tr, g, upd = run(m, features(t=20))
    check_common(v, ev, tr, g, upd)
    for _, feats in (ev, tr):
        w = feats["attention_weights"]
        assert w.shape == (B, 20) and feats["frames"].shape == (B, 20, 8)
        close(w.sum(-1), np.ones(B))
        close(w, softmax(feats["attention_scores"]))
        close(feats["embedding"], np.einsum("bt,btd->bd", w, feats["frames"]))
    assert np.linalg.norm(g["encoder"]["conv0"]["kernel"]) > 0


def test_mhatt_rnn():
    m = build(
        "mhatt_rnn",
        num_classes=C,
        heads=3,
        conv_filters=(3, 1),
        rnn_units=4,
        rnn_layers=1,
        dense_units=(8,),
    )
    v, ev, tr, g, upd = run(m, features(t=20))
    check_common(v, ev, tr, g, upd)
    _, feats = ev
    hw = feats["head_attention_weights"]
    assert hw.shape == (B, 3, 20) and feats["embedding"].shape == (B, 3 * 8)
    close(hw.sum(-1), np.ones((B, 3)))
    close(feats["attention_weights"], hw.mean(1))
    close(feats["embedding"], np.einsum("bht,btd->bhd", hw, feats["frames"]).reshape(B, -1))
    assert not np.allclose(hw[:, 0], hw[:, 1])  # the heads have their own queries


# ------------------------------------------------------------------------------------------------
# Transformer


def _np_layer_norm(x, p, eps=1e-6):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * p["scale"] + p["bias"]


def test_transformer_attention_equals_numpy():
    m = build(
        "transformer",
        num_classes=C,
        dim=8,
        depth=2,
        heads=2,
        mlp_dim=16,
        patch=2,
        stride=2,
        max_tokens=16,
    )
    x = features(t=13, f=6)  # 6 tokens of 2 frames (the 13th frame is dropped) + the class token
    v, ev, tr, g, upd = run(m, x)
    check_common(v, ev, tr, g, upd)
    _, feats = ev
    att = feats["attention"]
    assert att.shape == (2, B, 2, 7, 7)
    assert feats["frames"].shape == (B, 6, 8) and feats["embedding"].shape == (B, 8)
    close(att.sum(-1), np.ones(att.shape[:-1]))
    close(tr[1]["attention"].sum(-1), np.ones(att.shape[:-1]))
    # Layer 0 recomputed in NumPy (float64) from the parameters.
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), v["params"])
    xn = np.asarray(x, np.float64)
    patches = np.stack([xn[:, 2 * n : 2 * n + 2].reshape(B, 12) for n in range(6)], axis=1)
    tok = patches @ p["embed"]["kernel"] + p["embed"]["bias"]
    tok = (
        np.concatenate([np.broadcast_to(p["cls"], (B, 1, 8)), tok], axis=1) + p["pos_embedding"][:7]
    )
    a = p["block0"]["attn"]
    h = _np_layer_norm(tok, p["block0"]["ln1"])
    q = (h @ a["query"]["kernel"] + a["query"]["bias"]).reshape(B, 7, 2, 4)
    k = (h @ a["key"]["kernel"]).reshape(B, 7, 2, 4)
    s = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(4)
    s = np.exp(s - s.max(-1, keepdims=True))
    close(att[0], s / s.sum(-1, keepdims=True), atol=1e-5)


def test_frame_patches():
    x = np.arange(2 * 7 * 3, dtype=np.float32).reshape(2, 7, 3)
    p = np.asarray(frame_patches(jnp.asarray(x), 3, 2))  # tokens at frames 0-2, 2-4, 4-6
    assert p.shape == (2, 3, 9)
    close(p[:, 1], x[:, 2:5].reshape(2, 9))
    assert frame_patches(x, 1, 1) is x


# ------------------------------------------------------------------------------------------------
# Statistics pooling and the attention head


def test_stats_pool_net():
    m = build(
        "stats_pool_net",
        num_classes=C,
        widths=(4, 4, 6),
        kernels=(5, 3, 1),
        dilations=(1, 2, 1),
        embed_dim=5,
    )
    v, ev, tr, g, upd = run(m, features(t=30))
    check_common(v, ev, tr, g, upd)
    for _, feats in (ev, tr):
        fr = np.asarray(feats["frames"], np.float64)
        assert (
            fr.shape == (B, 30, 6)
            and feats["stats"].shape == (B, 12)
            and feats["embedding"].shape == (B, 5)
        )
        close(feats["stats"], np.concatenate([fr.mean(1), fr.std(1)], -1), atol=1e-4)
    assert v["params"]["frame2"]["kernel"].shape == (3, 4, 4)


def test_statistics_pooling_is_permutation_invariant():
    h = np.random.default_rng(3).standard_normal((3, 17, 5)).astype(np.float32)
    perm = np.random.default_rng(4).permutation(17)
    statistics_pooling = jax.jit(stats_pool_net.statistics_pooling)  # one compile, not one per op
    close(statistics_pooling(h[:, perm]), statistics_pooling(h))
    assert statistics_pooling(h).shape == (3, 10)
    # Constant frames: the std is floored at sqrt(1e-8).
    close(statistics_pooling(np.ones((1, 4, 2), np.float32))[:, 2:], np.full((1, 2), 1e-4))


@pytest.mark.parametrize("dilation,stride", [(2, 1), (3, 2)])
def test_conv1d_dilation_matmul_equals_lax(dilation, stride):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 19, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 4)).astype(np.float32)
    both = jax.jit(
        lambda x, w: (
            layers.conv1d_matmul(x, w, stride, dilation),
            layers.conv1d_xla(x, w, stride, dilation),
        )
    )
    close(*both(x, w), atol=1e-5)


@pytest.mark.parametrize("mode,hidden", [("dense", 0), ("dense", 4), ("query", 0)])
def test_attention_head(mode, hidden):
    m = build("attention_head", num_classes=C, mode=mode, hidden=hidden, classifier=True)
    fr = features(t=12, f=6)
    perm = np.random.default_rng(5).permutation(12)

    v = variables(m, fr)

    @jax.jit
    def f(v, fr):
        def loss(p):
            scores, feats = m.apply({"params": p}, fr, train=True)
            att = (jax.nn.log_softmax(scores) * jnp.arange(12.0)).sum()
            return att + feats["class_logits"].sum(), None

        g, _ = jax.grad(loss, has_aux=True)(v["params"])
        return v, m.apply(v, fr), m.apply(v, fr[:, perm]), g

    v, (scores, feats), (scores_p, feats_p), g = jax.device_get(f(v, fr))
    assert (
        scores.shape == (B, 12)
        and feats["weights"].shape == (B, 12)
        and feats["embedding"].shape == (B, 6)
    )
    assert feats["class_logits"].shape == (B, C)
    close(feats["weights"].sum(-1), np.ones(B))
    close(feats["weights"], softmax(scores))
    close(feats["embedding"], np.einsum("bt,btd->bd", feats["weights"], fr))
    # Per-frame scoring: permuting the frames permutes the scores, the pooled embedding is unchanged.
    close(scores_p, scores[:, perm])
    close(feats_p["embedding"], feats["embedding"])
    assert all(np.linalg.norm(x) > 0 for x in jax.tree.leaves(g))


# ------------------------------------------------------------------------------------------------
# Real initialisers, defaults and errors


def test_real_init():
    ms = {
        "lstm_p": build("lstm_p", num_classes=C, units=6, proj=3),
        "transformer": build("transformer", num_classes=C, dim=8, depth=1, heads=2, max_tokens=64),
    }
    x = features()
    vs = jax.jit(lambda k, x: {n: m.init(k, x, train=False) for n, m in ms.items()})(key(0), x)
    vs = jax.device_get(vs)
    assert all(np.all(np.isfinite(a)) for a in jax.tree.leaves(vs))
    gates_b = vs["lstm_p"]["params"]["lstm0_input"]["bias"]  # [i, f, g, o]: forget-gate bias 1
    close(gates_b, np.concatenate([np.zeros(6), np.ones(6), np.zeros(12)]))
    w_r = vs["lstm_p"]["params"]["lstm0"]["recurrent"]["kernel"]  # orthogonal rows [3, 24]
    close(w_r @ w_r.T, np.eye(3), atol=1e-5)
    assert not np.any(vs["transformer"]["params"]["cls"])  # zero class token
    pos = vs["transformer"]["params"]["pos_embedding"]  # normal(0.02)
    assert pos.shape == (64, 8) and 0.01 < float(pos.std()) < 0.03


@pytest.mark.parametrize("name", ALL)
def test_default_sizes_trace(name):
    """Every default config traces at a typical size (100 frames x 40 mels; abstract, no compile)."""
    m = build(name, num_classes=10)
    x = np.zeros((4, 100, 40) if name != "attention_head" else (4, 25, 32), np.float32)
    v = jax.eval_shape(lambda k: m.init(k, x, train=False), key(0))
    logits, feats = jax.eval_shape(lambda v: m.apply(v, x, train=False), v)
    assert logits.shape == ((4, 10) if name != "attention_head" else (4, 25))
    assert count_params(v["params"]) > 0
    assert ("weights" if name == "attention_head" else "frames") in feats


@pytest.mark.parametrize("name", ALL)
def test_bad_input_rank(name):
    m = build(name, num_classes=3)
    with pytest.raises(
        ValueError, match=rf"{name}: expected .*\[B, T, [FD]\].*got shape \(2, 50\)"
    ):
        m.init(key(0), np.zeros((2, 50), np.float32), train=False)


def test_too_short_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"cnn2d: its poolings need T >= 16"):
        build("cnn2d", num_classes=3).init(key(0), np.zeros((1, 8, 40), np.float32), train=False)
