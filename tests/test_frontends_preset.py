"""`kdjax.frontends.preset` (presets at other sample rates), the public `dct_matrix` and the
package's public API.

The expected dicts below are written out by hand: they are the front-end configs that
configs/mrkd.py (`representation`), configs/iusp.py (variant=paper) and configs/frami.py
(variant=paper) built at commit 2abd3b0, before they called `preset`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.fft

from kdjax import frontends as F

C1 = 32.703195662574764

# configs/mrkd.py representation(name, sr) at 2abd3b0 (MFCC without its deltas_order/delta_width).
MRKD = {
    ("logmel", 8000): dict(name="logmel", sample_rate=8000, n_fft=256, win_length=200, hop_length=80,
                           n_mels=64, fmin=125.0, fmax=4000.0, log="db"),
    ("mfcc", 8000): dict(name="mfcc", sample_rate=8000, n_fft=256, win_length=200, hop_length=80,
                         n_mels=40, n_mfcc=40, fmin=20.0, fmax=4000.0),
    ("stft", 8000): dict(name="stft", sample_rate=8000, n_fft=256, win_length=200, hop_length=80,
                         power=2.0, log="db"),
    ("cqt", 8000): dict(name="logcqt", sample_rate=8000, hop_length=128, fmin=C1, n_bins=81,
                        bins_per_octave=12),
    ("logmel", 48000): dict(name="logmel", sample_rate=48000, n_fft=2048, win_length=1200,
                            hop_length=480, n_mels=64, fmin=125.0, fmax=7500.0, log="db"),
    ("mfcc", 48000): dict(name="mfcc", sample_rate=48000, n_fft=2048, win_length=1200, hop_length=480,
                          n_mels=40, n_mfcc=40, fmin=20.0, fmax=8000.0),
    ("stft", 48000): dict(name="stft", sample_rate=48000, n_fft=2048, win_length=1200, hop_length=480,
                          power=2.0, log="db"),
    ("logmel", 44100): dict(name="logmel", sample_rate=44100, n_fft=2048, win_length=1102,
                            hop_length=441, n_mels=64, fmin=125.0, fmax=7500.0, log="db"),
    ("mfcc", 44100): dict(name="mfcc", sample_rate=44100, n_fft=2048, win_length=1102, hop_length=441,
                          n_mels=40, n_mfcc=40, fmin=20.0, fmax=8000.0),
    ("stft", 44100): dict(name="stft", sample_rate=44100, n_fft=2048, win_length=1102, hop_length=441,
                          power=2.0, log="db"),
    ("cqt", 44100): dict(name="logcqt", sample_rate=44100, hop_length=1024, fmin=C1, n_bins=110,
                         bins_per_octave=12),
    ("cqt", 48000): dict(name="logcqt", sample_rate=48000, hop_length=1024, fmin=C1, n_bins=112,
                         bins_per_octave=12),
}
MRKD_PRESET = {"logmel": "logmel64_16k", "mfcc": "mfcc40_16k", "stft": "stft_16k", "cqt": "cqt_16k"}


@pytest.mark.parametrize("rep,sr", [(r, s) for (r, s) in MRKD if s in (8000, 48000) and (r, s) != ("cqt", 48000)])
def test_preset_reproduces_mrkd_rescaling(rep: str, sr: int) -> None:
    """8 and 48 kHz: the library rule alone gives what configs/mrkd.py computed."""
    assert F.preset(MRKD_PRESET[rep], sample_rate=sr) == MRKD[rep, sr]


@pytest.mark.parametrize("rep,sr", [("logmel", 44100), ("mfcc", 44100), ("stft", 44100),
                                    ("cqt", 44100), ("cqt", 48000)])
def test_preset_plus_mrkd_overrides(rep: str, sr: int) -> None:
    """Where mrkd's own choices differ from the rule, they are overrides: its window rounding
    (Python's round, half to even: round(0.025 * 44100) = 1102, the rule rounds 1102.5 up) and
    its CQT bins filled up to 0.9 x Nyquist at rates above the preset's."""
    got = F.preset(MRKD_PRESET[rep], sample_rate=sr)
    if rep == "cqt":
        assert got == dict(MRKD[rep, sr], n_bins=84)  # the rule keeps the preset's 84 bins (same Hz)
        over = dict(n_bins=int(math.floor(12 * math.log2(0.9 * sr / 2 / C1))))
    else:
        assert got == dict(MRKD[rep, sr], win_length=1103)
        over = dict(win_length=round(0.025 * sr))
    assert F.preset(MRKD_PRESET[rep], sample_rate=sr, **over) == MRKD[rep, sr]


def test_preset_reproduces_iusp_and_frami_paper_frontends() -> None:
    # configs/iusp.py variant=paper (44.1 kHz): teacher; the students use n_mels=20.
    iusp_t = dict(name="logmel", sample_rate=44100, n_fft=2048, win_length=1102, hop_length=441,
                  n_mels=64, fmin=125.0, fmax=7500.0, log="db")
    assert F.preset("logmel64_16k", 44100, win_length=1102) == iusp_t
    assert F.preset("logmel64_16k", 44100, win_length=1102, n_mels=20) == dict(iusp_t, n_mels=20)
    # configs/frami.py variant=paper: ESC-50 at 44.1 kHz and AudioMNIST at 48 kHz, full band, dB.
    # The rule's 1103-sample window is frami's (it rounded 1102.5 up); fmax is its full-band choice.
    esc50 = dict(name="logmel", sample_rate=44100, n_fft=2048, win_length=1103, hop_length=441,
                 n_mels=64, fmin=50.0, fmax=22050.0, log="db", eps=1e-6)
    amnist = dict(name="logmel", sample_rate=48000, n_fft=2048, win_length=1200, hop_length=480,
                  n_mels=64, fmin=50.0, fmax=24000.0, log="db", eps=1e-6)
    assert F.preset("logmel_frami", 44100, fmax=22050.0, log="db") == esc50
    assert F.preset("logmel_frami", 48000, fmax=24000.0, log="db") == amnist
    assert F.preset("logmel_frami", 44100)["fmax"] == 8000.0  # the rule keeps Hz below Nyquist


@pytest.mark.parametrize("name", sorted(F.PRESETS))
def test_preset_at_its_own_rate_is_a_copy(name: str) -> None:
    for sr in (None, F.PRESETS[name]["sample_rate"]):
        got = F.preset(name, sample_rate=sr)
        assert got == F.PRESETS[name] and got is not F.PRESETS[name]
        got["name"] = "changed"
        assert F.PRESETS[name]["name"] != "changed"


@pytest.mark.parametrize("name", sorted(F.PRESETS))
@pytest.mark.parametrize("sr", [8000, 11025, 22050, 24000, 32000, 44100, 48000, 96000])
def test_preset_keeps_durations_and_band(name: str, sr: int) -> None:
    """Window and hop stay the same in seconds to within half a sample; n_fft is a power of two
    >= the window (the next one for every preset here); fmax <= Nyquist; unrelated fields kept."""
    p, q = F.PRESETS[name], F.preset(name, sample_rate=sr)
    old = p["sample_rate"]
    assert q["sample_rate"] == sr
    for k in ("win_length", "hop_length"):
        if k in p and p["name"] not in ("cqt", "logcqt"):
            assert abs(q[k] / sr - p[k] / old) <= 0.5 / sr + 1e-12, k
    if "n_fft" in p:
        n = q["n_fft"]
        assert n & (n - 1) == 0 and n >= q["win_length"]
        assert n == 1 << (q["win_length"] - 1).bit_length()
    if p["name"] in ("cqt", "logcqt"):
        assert q["hop_length"] & (q["hop_length"] - 1) == 0
        assert abs(q["hop_length"] / sr - p["hop_length"] / old) < p["hop_length"] / old  # within 2x
        top = q["fmin"] * 2 ** ((q["n_bins"] - 1) / q["bins_per_octave"])
        assert top < 0.9 * sr / 2 and q["n_bins"] <= p["n_bins"]
    if "fmax" in p:
        assert q["fmax"] == min(p["fmax"], sr / 2)
    changed = {"sample_rate", "win_length", "hop_length", "n_fft", "fmax", "n_bins"}
    assert {k: v for k, v in q.items() if k not in changed} == {k: v for k, v in p.items() if k not in changed}


def test_preset_rounding_is_half_up_and_exact() -> None:
    # 400 samples at 16 kHz -> 1102.5 at 44.1 kHz -> 1103; 160 -> 441 exactly; 80 at 8 kHz -> 220.5
    # at 22.05 kHz -> 221; 200 -> 551.25 -> 551.
    assert F.preset("logmel64_16k", 44100)["win_length"] == 1103
    assert F.preset("logmel64_16k", 44100)["hop_length"] == 441
    q = F.preset("logmel40_8k", 22050)
    assert (q["win_length"], q["hop_length"], q["n_fft"]) == (551, 221, 1024)


def test_rescaled_preset_analyses_the_same_frequencies() -> None:
    """A 1 kHz tone peaks in the same mel band with logmel64_16k at 16 and at 44.1 kHz, and the
    rescaled front-end gives 1 + N // hop frames (10 ms apart)."""
    outs = {}
    for sr in (16000, 44100):
        t = np.arange(sr) / sr
        x = jnp.asarray((0.5 * np.sin(2 * np.pi * 1000.0 * t))[None].astype(np.float32))
        cfg = F.preset("logmel64_16k", sample_rate=sr)
        y = np.asarray(jax.jit(F.make_frontend(cfg))(x))
        assert y.shape == (1, 1 + sr // cfg["hop_length"], 64)
        outs[sr] = y[0, 5:-5].mean(0)
    assert np.argmax(outs[16000]) == np.argmax(outs[44100])
    # Band levels around the tone relative to its peak band agree within 1 dB (same band edges in
    # Hz, same window in s). Absolute levels differ: the DFT's power grows with the window's
    # sample count (~10 dB from 400 to 1103 samples), as in librosa.
    k = int(np.argmax(outs[16000]))
    rel = {sr: o[k - 1 : k + 2] - o[k] for sr, o in outs.items()}
    np.testing.assert_allclose(rel[44100], rel[16000], atol=1.0)


def test_make_frontend_runs_every_rescaled_preset_shapes() -> None:
    for name in sorted(F.PRESETS):
        cfg = F.preset(name, sample_rate=8000)
        shape = jax.eval_shape(F.make_frontend(cfg), jax.ShapeDtypeStruct((2, 8000), jnp.float32)).shape
        assert shape[:2] == (2, 1 + 8000 // cfg["hop_length"]), name


@pytest.mark.parametrize("kwargs,match", [
    (dict(name="nope"), "unknown preset 'nope'"),
    (dict(name="logmel64_16k", sample_rate=0), "sample_rate"),
    (dict(name="logmel64_16k", sample_rate=-8000), "sample_rate"),
    (dict(name="logmel64_16k", sample_rate=16000.5), "sample_rate"),
    (dict(name="logmel64_16k", sample_rate=True), "sample_rate"),
    (dict(name="logmel64_16k", sample_rate="16k"), "sample_rate"),
    (dict(name="logmel64_16k", n_bins=3), r"unknown override\(s\) \['n_bins'\]"),
    (dict(name="logmel64_16k", sample_rate=200), "'logmel64_16k' at 200 Hz: fmin=125.0"),
    (dict(name="cqt_16k", sample_rate=72), "'cqt_16k' at 72 Hz: n_bins="),
])
def test_preset_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        F.preset(**kwargs)


def test_preset_accepts_integral_float_rate() -> None:
    assert F.preset("logmel64_16k", 8000.0) == F.preset("logmel64_16k", 8000)
    assert F.preset("logmel64_16k", np.int64(8000))["sample_rate"] == 8000


@pytest.mark.parametrize("n_in,n_out,lifter", [(40, 13, 0.0), (40, 40, 0.0), (64, 20, 22.0), (7, 1, 3.0)])
def test_dct_matrix_matches_scipy_dct(n_in: int, n_out: int, lifter: float) -> None:
    x = np.random.default_rng(0).standard_normal((5, n_in))
    ref = scipy.fft.dct(x, type=2, norm="ortho", axis=-1)[:, :n_out]
    if lifter > 0:  # librosa.feature.mfcc's liftering
        ref = ref * (1 + (lifter / 2) * np.sin(np.pi * np.arange(1, n_out + 1) / lifter))
    d = F.dct_matrix(n_in, n_out, lifter)
    assert d.shape == (n_in, n_out) and d.dtype == np.float64
    np.testing.assert_allclose(x @ d, ref, rtol=1e-12, atol=1e-12)
    d[0, 0] = 123.0  # a copy: the cached matrix used by mfcc is not changed
    assert F.dct_matrix(n_in, n_out, lifter)[0, 0] != 123.0


@pytest.mark.parametrize("args,match", [((0, 1), "n_in"), ((4, 5), "n_out"), ((4, 0), "n_out"),
                                        ((4, 2, -1.0), "lifter")])
def test_dct_matrix_errors(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        F.dct_matrix(*args)


def test_public_api_is_the_old_one_plus_dct_matrix_and_preset() -> None:
    old = {"FRONTEND_NAMES", "PRESETS", "cqt", "cqt_frequencies", "deltas", "get_window", "hz_to_mel",
           "log_cqt", "log_mel", "make_frontend", "mel_filterbank", "mel_frequencies", "mel_spectrogram",
           "mel_to_hz", "mfcc", "num_frames", "power_to_db", "resample", "spectrogram", "stft"}
    assert set(F.__all__) == old | {"dct_matrix", "preset"}
    assert all(callable(getattr(F, n)) for n in F.__all__ if n not in ("FRONTEND_NAMES", "PRESETS"))
    from kdjax.frontends import PRESETS, make_frontend  # noqa: F401  (configs import these)
