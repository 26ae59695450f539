"""Model contract: (logits [B, C], feats) with the standard feats keys and shapes."""

import jax
import jax.numpy as jnp
import pytest

from configs import fsdd
from kdjax.models import build, count_params


@pytest.mark.parametrize("kw", [fsdd.TEACHER, fsdd.STUDENT])
def test_temporal_cnn_outputs(kw):
    m = build("temporal_cnn", num_classes=10, **kw)
    x = jax.random.normal(jax.random.key(0), (3, 101, 40))
    v = jax.jit(lambda k, x: m.init(k, x, train=False))(jax.random.key(1), x)  # jit: one compile, not one per op
    logits, feats = jax.jit(lambda v, x: m.apply(v, x, train=False))(v, x)
    assert logits.shape == (3, 10)
    d = kw["widths"][-1]
    t = feats["frames"].shape[1]
    assert feats["frames"].shape == (3, t, d)
    assert feats["embedding"].shape == (3, d)
    assert feats["stats"].shape == (3, 2 * d)
    for i in range(len(kw["widths"])):
        assert feats[f"fmap{i}"].shape[0::2] == (3, kw["widths"][i])
    # embedding is the time average of frames; stats = [mean, std].
    assert jnp.allclose(feats["embedding"], feats["frames"].mean(1), atol=1e-5)
    assert jnp.allclose(feats["stats"][:, d:], feats["frames"].std(1), atol=1e-3)


def test_student_is_at_most_a_tenth_of_the_teacher():
    x = jnp.zeros((1, 101, 40))
    n = {}
    for name, kw in [("t", fsdd.TEACHER), ("s", fsdd.STUDENT)]:
        m = build("temporal_cnn", num_classes=10, **kw)
        n[name] = count_params(jax.eval_shape(m.init, jax.random.key(0), x)["params"])
    assert 1_000_000 <= n["t"] <= 2_000_000
    assert n["s"] * 10 <= n["t"]


def test_bad_model_name_and_kwargs():
    with pytest.raises(ValueError, match="no model module"):
        build("nope", num_classes=2)
    with pytest.raises(ValueError, match="bad keyword"):
        build("temporal_cnn", num_classes=2, nonsense=1)
