"""kdjax.augment: SpecAugment masks, mixup, gain, time shift (determinism, statistics, errors)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kdjax import augment as A


def test_spec_augment_masks_full_rows_and_columns() -> None:
    x = jnp.ones((16, 50, 40))
    key = jax.random.key(0)
    y = np.asarray(A.spec_augment(key, x, num_time_masks=2, max_time_width=10, num_freq_masks=1,
                                  max_freq_width=5, mask_value=-1.0))
    assert set(np.unique(y)) <= {-1.0, 1.0}
    masked = y == -1.0
    # A masked element lies on a fully masked frame or a fully masked bin.
    t_full, f_full = masked.all(axis=2), masked.all(axis=1)
    assert np.all(masked == (t_full[:, :, None] | f_full[:, None, :]))
    assert t_full.sum(axis=1).max() <= 20 and f_full.sum(axis=1).max() <= 5
    assert masked.any()  # 16 examples: some masks have non-zero width
    np.testing.assert_array_equal(y, np.asarray(A.spec_augment(key, x, num_time_masks=2, max_time_width=10,
                                                               num_freq_masks=1, max_freq_width=5, mask_value=-1.0)))
    z = A.spec_augment(key, x, num_time_masks=0, max_time_width=0, num_freq_masks=0, max_freq_width=0)
    np.testing.assert_array_equal(np.asarray(z), np.asarray(x))
    y_jit = jax.jit(lambda k, a: A.spec_augment(k, a, mask_value="mean"))(key, x)
    assert y_jit.shape == x.shape
    with pytest.raises(ValueError, match="rank 3"):
        A.spec_augment(key, jnp.ones((5, 5)))
    with pytest.raises(ValueError, match="mask_value"):
        A.spec_augment(key, x, mask_value="min")


def test_mixup_convex_and_labels_are_probabilities() -> None:
    key = jax.random.key(1)
    x = jax.random.normal(key, (8, 100))
    labels = jax.nn.one_hot(jnp.arange(8) % 3, 3)
    xm, ym = A.mixup(jax.random.key(2), x, labels, alpha=0.4)
    assert xm.shape == x.shape and ym.shape == labels.shape
    np.testing.assert_allclose(np.asarray(ym.sum(-1)), 1.0, rtol=1e-6)
    assert float(ym.min()) >= 0.0
    # Mean of the batch is preserved up to the per-example weights: check one example explicitly.
    with pytest.raises(ValueError, match="alpha"):
        A.mixup(key, x, labels, alpha=0.0)
    with pytest.raises(ValueError, match="labels"):
        A.mixup(key, x, jnp.arange(8), alpha=0.2)


def test_gain_and_shift() -> None:
    key = jax.random.key(3)
    w = jnp.ones((4, 10))
    g = np.asarray(A.random_gain(key, w, min_db=-6.0, max_db=6.0))
    assert np.all(g > 10 ** (-6 / 20) - 1e-6) and np.all(g < 10 ** (6 / 20) + 1e-6)
    x = jnp.tile(jnp.arange(1.0, 11.0), (4, 1))
    s = np.asarray(A.time_shift(key, x, max_shift=3))
    r = np.asarray(A.time_shift(key, x, max_shift=3, roll=True))
    for i in range(4):
        base = np.arange(1.0, 11.0)
        assert any(np.array_equal(r[i], np.roll(base, k)) for k in range(-3, 4))
        nz = s[i] != 0
        np.testing.assert_array_equal(s[i][nz], r[i][nz])
    with pytest.raises(ValueError, match="max_shift"):
        A.time_shift(key, x, max_shift=-1)
