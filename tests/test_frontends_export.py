"""Export-friendly front-end options: `stft_impl="dft"`, `framing=`, `dft_dtype=`, and
`jax.export` with a symbolic batch size.

Tolerances (float32): the DFT-matmul STFT equals the rfft STFT to max |dft - rfft| <=
2e-6 x max |rfft| (measured <= 4e-7) and both equal a float64 NumPy reference to the same bound;
log-mel (dB) to 1e-3 dB; MFCC to 1e-3; gradients to 1e-4 x their largest value. Framings are
exactly equal. With the basis stored in float16 the STFT is within 2e-3 x max |rfft|.
"""

from __future__ import annotations

import importlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

from kdjax import frontends as F

STFT_CASES = [
    dict(n_fft=256, win_length=200, hop_length=80),
    dict(n_fft=512, hop_length=100, center=False),
    dict(n_fft=255, win_length=100, hop_length=33, window="hamming", pad_mode="reflect"),
    dict(n_fft=64, hop_length=64, window="ones"),
    dict(n_fft=400, win_length=301, hop_length=160, window="blackman", pad_mode="edge"),
]


def _wave(shape: tuple[int, ...], seed: int = 0) -> jax.Array:
    rng = np.random.default_rng(seed)
    t = np.arange(shape[-1]) / 8000.0
    x = 0.1 * rng.standard_normal(shape) + 0.5 * np.sin(2 * np.pi * 440.0 * t)
    return jnp.asarray(x.astype(np.float32))


def _np_stft(x: np.ndarray, n_fft: int, hop_length: int, win_length: int | None = None,
             window: str = "hann", center: bool = True, pad_mode: str = "constant") -> np.ndarray:
    """float64 NumPy reference: pad, frame, window, np.fft.rfft."""
    x = np.asarray(x, np.float64)
    if center:
        x = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(n_fft // 2, n_fft // 2)], mode=pad_mode)
    t = 1 + (x.shape[-1] - n_fft) // hop_length
    idx = hop_length * np.arange(t)[:, None] + np.arange(n_fft)[None, :]
    w = F.get_window(window, win_length or n_fft, n_fft)
    return np.fft.rfft(x[..., idx] * w, axis=-1)


def _rel(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("kw", STFT_CASES)
def test_dft_stft_equals_rfft_and_numpy(kw: dict) -> None:
    x = _wave((2, 3, 1000))
    ref = _np_stft(np.asarray(x), **kw)
    z_rfft = np.asarray(F.stft(x, **kw))
    z_dft = np.asarray(jax.jit(lambda a: F.stft(a, stft_impl="dft", **kw))(x))
    assert z_dft.shape == z_rfft.shape == ref.shape and z_dft.dtype == np.complex64
    assert _rel(z_dft, z_rfft) <= 2e-6
    assert _rel(z_dft, ref) <= 2e-6 and _rel(z_rfft, ref) <= 2e-6
    for power in (1.0, 2.0, 0.5):
        s_dft = F.spectrogram(x, power=power, stft_impl="dft", **kw)
        assert _rel(s_dft, np.abs(ref) ** power) <= 5e-6, power


@pytest.mark.parametrize("framing", ["index", "slices"])
@pytest.mark.parametrize("impl", ["rfft", "dft"])
@pytest.mark.parametrize("kw", STFT_CASES[:3])
def test_framings_are_identical(framing: str, impl: str, kw: dict) -> None:
    x = _wave((3, 900), seed=1)
    a = jax.jit(lambda v: F.stft(v, stft_impl=impl, **kw))(x)
    b = jax.jit(lambda v: F.stft(v, stft_impl=impl, framing=framing, **kw))(x)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_dft_frontends_match_rfft_through_make_frontend() -> None:
    x = _wave((3, 8000), seed=2)
    for name, tol in [("logmel40_8k", 1e-3), ("logmel_frami", 1e-3), ("mfcc40_16k", 1e-3)]:
        ref = np.asarray(jax.jit(F.make_frontend(name))(x))
        for framing in ("gather", "slices"):
            fe = F.make_frontend({"preset": name, "stft_impl": "dft", "framing": framing})
            got = np.asarray(jax.jit(fe)(x))
            assert got.shape == ref.shape
            np.testing.assert_allclose(got, ref, atol=tol, rtol=0, err_msg=f"{name} {framing}")
    # stft front-end (dB, 257 bins): bins near the -80 dB floor carry the round-off, so the bound
    # is relative to the dB range there; mel/mfcc above average it out.
    ref = np.asarray(F.make_frontend("stft_16k")(x))
    got = np.asarray(F.make_frontend({"preset": "stft_16k", "stft_impl": "dft"})(x))
    assert np.max(np.abs(got - ref)) <= 1e-2 and np.mean(np.abs(got - ref)) <= 1e-4


def test_dft_gradients_equal_rfft() -> None:
    x = _wave((2, 4000), seed=3)
    x = x.at[1].set(0.0)  # a silent clip: the gradient must stay finite

    def loss(impl: str, power: float):
        fe = F.make_frontend({"preset": "logmel40_8k", "stft_impl": impl, "power": power})
        return jax.grad(lambda a: jnp.sum(jnp.sin(0.1 * fe(a))))

    for power in (2.0, 1.0):
        g_ref = np.asarray(loss("rfft", power)(x))
        g = np.asarray(jax.jit(loss("dft", power))(x))
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g, g_ref, rtol=0, atol=1e-4 * np.max(np.abs(g_ref)))
    gs = jax.grad(lambda a: jnp.sum(jnp.abs(F.stft(a, n_fft=256, hop_length=64, stft_impl="dft")) ** 2))(x)
    gr = jax.grad(lambda a: jnp.sum(jnp.abs(F.stft(a, n_fft=256, hop_length=64)) ** 2))(x)
    np.testing.assert_allclose(np.asarray(gs), np.asarray(gr), rtol=0, atol=1e-4 * float(jnp.max(jnp.abs(gr))))


def test_dft_float16_basis_storage() -> None:
    x = _wave((2, 2000), seed=4)
    kw = dict(n_fft=256, win_length=200, hop_length=80)
    ref = np.asarray(F.stft(x, **kw))
    fn = lambda a: F.spectrogram(a, power=1.0, stft_impl="dft", dft_dtype="float16", **kw)  # noqa: E731
    got = np.asarray(jax.jit(fn)(x))
    assert got.dtype == np.float32
    err = _rel(got, np.abs(ref))
    assert 1e-6 < err <= 2e-3  # float16 storage: coarser than float32, not identical
    consts = [v for v in jax.make_jaxpr(fn)(x).consts if getattr(v, "dtype", None) == np.float16]
    text = str(jax.make_jaxpr(fn)(x))
    assert consts or "f16[" in text  # the basis enters the program as float16


def test_dft_chunked_equals_whole(monkeypatch) -> None:
    x = _wave((6, 1600), seed=5)
    kw = dict(sample_rate=8000, n_fft=256, win_length=200, hop_length=80, n_mels=40, stft_impl="dft")
    whole = np.asarray(jax.jit(lambda a: F.log_mel(a, **kw))(x))
    mod = importlib.import_module("kdjax.frontends.stft")  # `F.stft` is the function
    monkeypatch.setattr(mod, "_CHUNK_BYTES", 4 * F.num_frames(1600, 256, 80) * 256 * 4)
    low = jax.jit(lambda a: F.log_mel(a, **kw)).lower(x)
    assert "while" in low.as_text()  # the chunked path
    np.testing.assert_allclose(np.asarray(low.compile()(x)), whole, rtol=0, atol=1e-4)


@pytest.mark.parametrize("cfg", [
    "logmel40_8k",
    {"preset": "logmel40_8k", "stft_impl": "dft", "framing": "slices"},
    {"preset": "mfcc40_16k", "stft_impl": "dft", "framing": "slices", "deltas_order": 2},
])
def test_export_with_symbolic_batch(cfg) -> None:
    """jax.export with batch dimension "b" runs at batch 1 and 3 and matches the jitted front-end;
    the serialized artifact round-trips. The dft+slices program has no FFT, complex or gather op
    (what ONNX / TFLite converters lack)."""
    fe = F.make_frontend(cfg)
    (b,) = export.symbolic_shape("b")
    exp = export.export(jax.jit(fe))(jax.ShapeDtypeStruct((b, 8000), jnp.float32))
    exp = export.deserialize(exp.serialize())
    for n in (1, 3):
        x = _wave((n, 8000), seed=n)
        np.testing.assert_allclose(np.asarray(exp.call(x)), np.asarray(jax.jit(fe)(x)), rtol=0, atol=1e-5)
    text = exp.mlir_module()
    if isinstance(cfg, dict):
        ops = set(re.findall(r"stablehlo\.([a-z_]+)", text))
        assert not ops & {"fft", "gather", "dynamic_gather", "complex", "real", "imag"}, ops


def test_symbolic_batch_skips_chunking(monkeypatch) -> None:
    """A concrete batch above the chunk size is chunked (lax.map); a symbolic one is computed
    whole instead of failing on the size comparison."""
    mod = importlib.import_module("kdjax.frontends.stft")
    monkeypatch.setattr(mod, "_CHUNK_BYTES", 1)  # every concrete batch of >= 2 rows is chunked
    fe = F.make_frontend("logmel40_8k")
    assert "while" in jax.jit(fe).lower(jax.ShapeDtypeStruct((4, 8000), jnp.float32)).as_text()
    (b,) = export.symbolic_shape("b")
    exp = export.export(jax.jit(fe))(jax.ShapeDtypeStruct((b, 8000), jnp.float32))
    assert "while" not in exp.mlir_module()
    x = _wave((2, 8000))
    np.testing.assert_allclose(np.asarray(exp.call(x)), np.asarray(jax.jit(fe)(x)), rtol=0, atol=1e-5)


@pytest.mark.parametrize("kw,match", [
    (dict(stft_impl="fft"), "stft_impl: expected one of"),
    (dict(framing="strided"), "framing: expected one of"),
    (dict(stft_impl="dft", dft_dtype="int8"), "dft_dtype: expected one of"),
    (dict(dft_dtype="float16"), "only used with stft_impl='dft'"),
])
def test_option_errors(kw: dict, match: str) -> None:
    x = _wave((1, 1000))
    for fn in (lambda: F.stft(x, n_fft=256, **kw), lambda: F.spectrogram(x, n_fft=256, **kw),
               lambda: F.log_mel(x, sample_rate=8000, n_fft=256, **kw),
               lambda: F.make_frontend({"preset": "mfcc40_16k", **kw})(x)):
        with pytest.raises(ValueError, match=match):
            fn()


def test_make_frontend_accepts_export_options_for_stft_frontends_only() -> None:
    for name in ("stft_16k", "logmel40_8k", "mfcc40_16k"):
        F.make_frontend({"preset": name, "stft_impl": "dft", "framing": "index", "dft_dtype": "float32"})
    F.make_frontend({"name": "mel", "sample_rate": 8000, "n_fft": 256, "stft_impl": "dft"})
    with pytest.raises(ValueError, match="unknown parameter"):
        F.make_frontend({"preset": "cqt_16k", "stft_impl": "dft"})
