"""The CPU fast paths give the plain path's numbers: `conv_impl="matmul"` vs `"xla"`.

kdjax/models/layers.py: a 1-D convolution as one matmul over shifted patches (default on CPU,
"auto") must equal `lax.conv` in outputs and gradients, keep the same parameters, and give the
same KD loss curve over 50 train steps (small shapes, so the whole file runs in seconds).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from kdjax import frontends
from kdjax.models import build, layers
from kdjax.train.program import LossTerm, Node, Program
from kdjax.train.state import TrainState
from kdjax.train.step import jit_train_step


@pytest.mark.parametrize(
    "t,cin,cout,k,stride",
    [(20, 5, 7, 9, 1), (7, 6, 4, 9, 2), (13, 4, 6, 1, 2)],
)
def test_conv1d_matmul_equals_lax_conv(t, cin, cout, k, stride):
    kx, kw, kg = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (3, t, cin))
    w = jax.random.normal(kw, (k, cin, cout)) / np.sqrt(k * cin)
    dy = jax.random.normal(kg, (3, -(-t // stride), cout))

    @jax.jit  # one compilation per case: outputs and (input, weight) gradients of both paths
    def both(x, w):
        out = {}
        for name, f in (("matmul", layers.conv1d_matmul), ("xla", layers.conv1d_xla)):
            y, vjp = jax.vjp(lambda x, w, f=f: f(x, w, stride), x, w)
            out[name] = (y, *vjp(dy))
        return out

    out = both(x, w)
    assert out["matmul"][0].shape == out["xla"][0].shape == dy.shape
    for a, b in zip(out["matmul"], out["xla"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_conv_impl_names_and_auto(monkeypatch):
    assert layers.resolve_conv_impl("xla") == "xla"
    assert layers.resolve_conv_impl("matmul") == "matmul"
    assert layers.resolve_conv_impl("auto") == ("matmul" if jax.default_backend() == "cpu" else "xla")
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert layers.resolve_conv_impl("auto") == "xla"  # accelerators keep the plain path
    monkeypatch.setattr(jax, "default_backend", lambda: "tpu")
    assert layers.resolve_conv_impl("auto") == "xla"
    with pytest.raises(ValueError, match="conv_impl='im2col'"):
        layers.resolve_conv_impl("im2col")
    with pytest.raises(ValueError, match="conv_impl"):
        build("temporal_cnn", num_classes=3, conv_impl="fast").init(
            jax.random.key(0), jnp.zeros((1, 8, 4)))


TEACHER = dict(stem_width=12, widths=(20,), strides=(2,), stem_stride=2, kernel=9)
STUDENT = dict(stem_width=8, widths=(8, 12), strides=(2, 2), stem_stride=2, kernel=9)


def _np_variables(module, x, seed: int):
    """Variables with the module's names/shapes (`eval_shape` of init), filled from NumPy.

    (Compiling flax's random initialisers costs ~20 s on a 2-core CPU; these are cheap.)
    """
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(module.init, jax.random.key(0), x)

    def fill(path, leaf):
        name = jax.tree_util.keystr(path[-1:])
        if "kernel" in name:
            fan_in = int(np.prod(leaf.shape[:-1]))
            return jnp.asarray(rng.standard_normal(leaf.shape) / np.sqrt(fan_in), jnp.float32)
        if "scale" in name or "var" in name:
            return jnp.ones(leaf.shape, jnp.float32)
        return jnp.asarray(0.1 * rng.standard_normal(leaf.shape), jnp.float32)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def test_same_parameters_for_every_conv_impl():
    # Same names, shapes, dtypes and initialisers (flax's Conv): checkpoints interchange between
    # paths. (Outputs and gradients are compared above and in the loss-curve test below.)
    x = jnp.zeros((2, 26, 10))
    shapes = {impl: jax.eval_shape(build("temporal_cnn", num_classes=4, conv_impl=impl, **TEACHER).init,
                                   jax.random.key(0), x)
              for impl in ("xla", "matmul", "auto")}
    sig = {impl: jax.tree_util.tree_map_with_path(lambda p, a: (jax.tree_util.keystr(p), a.shape, a.dtype), v)
           for impl, v in shapes.items()}
    assert sig["xla"] == sig["matmul"] == sig["auto"]


def _kd_loss_curve(conv_impl: str, steps: int = 50) -> np.ndarray:
    """Losses of `steps` KD train steps (kdjax's jitted train_step) on a small learnable task."""
    fe = frontends.make_frontend("logmel40_8k")
    mk = lambda kw: build("temporal_cnn", num_classes=4, conv_impl=conv_impl, **kw)  # noqa: E731
    spec = Program(
        nodes=(Node("student", "student", mk(STUDENT), "features.mel", trainable=True),
               Node("teacher", "teacher.teacher", mk(TEACHER), "features.mel", trainable=False)),
        frontends={"mel": fe},
        terms=(
            LossTerm.from_config("ce", dict(fn="softmax_xent", weight=0.1,
                                            inputs=["student.logits", "batch.labels"])),
            LossTerm.from_config("kd", dict(fn="kd_kl", weight=0.9, kw=dict(temperature=4.0),
                                            inputs=["student.logits", "teacher.teacher.logits"])),
        ),
    )
    # Tones whose frequency is the class (+ noise): the student can learn it.
    rng = np.random.default_rng(0)
    n, b = 2000, 8
    t = np.arange(n) / 8000.0
    batches = []
    for _ in range(4):
        y = rng.integers(0, 4, b)
        audio = np.sin(2 * np.pi * (300.0 + 400.0 * y)[:, None] * t) + 0.1 * rng.standard_normal((b, n))
        batches.append({"audio": jnp.asarray(audio, jnp.float32),
                        "labels": jax.nn.one_hot(y, 4), "mask": jnp.ones(b)})
    x = fe(batches[0]["audio"][:2])
    sv = _np_variables(spec.models["student"], x, seed=0)
    tv = _np_variables(spec.teachers["teacher"], x, seed=1)
    state = TrainState.create(params={"student": sv["params"]},
                              batch_stats={"student": sv["batch_stats"]},
                              tx=optax.adamw(3e-3, weight_decay=1e-4))
    step = jit_train_step(spec)
    losses = []
    for i in range(steps):
        state, m = step(state, {"teacher": tv}, batches[i % len(batches)], jax.random.key(0))
        losses.append(float(m["loss"]))
    return np.asarray(losses)


def test_kd_loss_curve_matmul_equals_xla():
    ref = _kd_loss_curve("xla")
    fast = _kd_loss_curve("matmul")
    assert ref[-1] < 0.7 * ref[0]  # it learns, so the curves are compared on a moving loss
    # float32 tolerance: both paths sum the same products in a different order (~1e-7 relative
    # per op); Adam amplifies tiny differences a little over 50 steps.
    np.testing.assert_allclose(fast, ref, rtol=2e-4, atol=1e-5)
