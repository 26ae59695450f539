"""Config entry point: `make_frontend(cfg)`, the named `PRESETS`, `FRONTEND_NAMES` and the
`_fe_*` builders behind each front-end name.

`make_frontend(cfg)` with `cfg["name"]` in `FRONTEND_NAMES` (or a key of `PRESETS`) returns
``fn(wave [B, N] float32) -> features [B, T, F]``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from kdjax.frontends._checks import _check_wave, _stft_params
from kdjax.frontends.cqt import cqt, log_cqt
from kdjax.frontends.mel import deltas, log_mel, mel_spectrogram, mfcc, power_to_db
from kdjax.frontends.stft import spectrogram


def _apply_log(s: jax.Array, log: str | None, *, ref: float | str, amin: float,
               top_db: float | None, eps: float) -> jax.Array:
    if log is None:
        return s
    if log == "db":
        return power_to_db(s, ref=ref, amin=amin, top_db=top_db)
    if log == "log_eps":
        if not eps > 0:
            raise ValueError(f"eps: expected > 0, got {eps!r}")
        return jnp.log(s + eps)
    raise ValueError(f"log: expected None, 'db' or 'log_eps', got {log!r}")


def _fe_waveform(x: jax.Array, *, sample_rate: float | None = None) -> jax.Array:
    """[..., N] -> [..., N, 1]: the raw waveform as a one-channel feature sequence."""
    del sample_rate
    return _check_wave(x)[..., None]


def _fe_stft(x: jax.Array, *, sample_rate: float | None = None, n_fft: int = 512,
             win_length: int | None = None, hop_length: int | None = None,
             window: str | np.ndarray = "hann", center: bool = True, pad_mode: str = "constant",
             power: float = 2.0, log: str | None = "db", ref: float | str = 1.0,
             amin: float = 1e-10, top_db: float | None = 80.0, eps: float = 1e-6,
             stft_impl: str = "rfft", framing: str = "gather", dft_dtype: str | None = None
             ) -> jax.Array:
    """Linear-frequency (log) spectrogram [..., T, n_fft // 2 + 1]; log=None|"db"|"log_eps"."""
    del sample_rate
    s = spectrogram(x, n_fft=n_fft, win_length=win_length, hop_length=hop_length, window=window,
                    center=center, pad_mode=pad_mode, power=power, stft_impl=stft_impl,
                    framing=framing, dft_dtype=dft_dtype)
    if log == "db" and power != 2.0:
        # power_to_db expects power; |X|**p in dB is (10 * 2 / p) log10 -> rescale.
        return power_to_db(s ** (2.0 / power), ref=ref, amin=amin, top_db=top_db)
    return _apply_log(s, log, ref=ref, amin=amin, top_db=top_db, eps=eps)


def _fe_mel(x: jax.Array, **kw: Any) -> jax.Array:
    return mel_spectrogram(x, **kw)


def _fe_mfcc(x: jax.Array, *, deltas_order: int = 0, delta_width: int = 9, **kw: Any) -> jax.Array:
    """MFCC, optionally with delta (and delta-delta...) features concatenated on F."""
    m = mfcc(x, **kw)
    feats = [m] + [deltas(m, width=delta_width, order=o) for o in range(1, deltas_order + 1)]
    return jnp.concatenate(feats, axis=-1) if len(feats) > 1 else m


def _signature_params(fn: Callable[..., Any]) -> tuple[str, ...]:
    return tuple(p.name for p in inspect.signature(fn).parameters.values()
                 if p.kind == inspect.Parameter.KEYWORD_ONLY)


# name -> (function, valid parameter names). Filled by `_register()` at the end of this module.
_FRONTENDS: dict[str, tuple[Callable[..., jax.Array], tuple[str, ...]]] = {}


def _register() -> None:
    mel_params = _signature_params(mel_spectrogram)
    _FRONTENDS.update({
        "waveform": (_fe_waveform, ("sample_rate",)),
        "stft": (_fe_stft, _signature_params(_fe_stft)),
        "mel": (_fe_mel, mel_params),
        "logmel": (log_mel, _signature_params(log_mel)),
        "mfcc": (_fe_mfcc, _signature_params(mfcc) + ("deltas_order", "delta_width")),
        "cqt": (cqt, _signature_params(cqt)),
        "logcqt": (log_cqt, _signature_params(log_cqt)),
    })


def make_frontend(cfg: Mapping[str, Any] | str) -> Callable[[jax.Array], jax.Array]:
    """Build a front-end from a config: ``fn(wave [B, N] float) -> features [B, T, F]``.

    Args:
      cfg: a Mapping or ml_collections.ConfigDict with key `name` (one of `FRONTEND_NAMES`:
        "waveform", "stft", "mel", "logmel", "mfcc", "cqt", "logcqt") plus that front-end's
        keyword parameters (units as in the functions: sample_rate Hz, n_fft / win_length /
        hop_length samples, fmin / fmax Hz, top_db dB, ...), or a preset name from `PRESETS`, or
        a mapping {"preset": "<name>", **overrides}.
        Export options of the STFT-based front-ends ("stft", "mel", "logmel", "mfcc"; see
        `kdjax.frontends.stft`): `stft_impl="rfft"` (default) or `stft_impl="dft"` (the STFT as
        one real matmul with a precomputed windowed DFT basis: no FFT, no complex dtype, for
        ONNX / TFLite), `framing="gather"` (default) | "index" | "slices" (static slices, no
        gather op), `dft_dtype=None | "float16" | ...` (storage dtype of the DFT basis, computed
        in the input's dtype). E.g. ``make_frontend({"preset": "logmel40_8k", "stft_impl":
        "dft", "framing": "slices"})``. The front-ends also export with a symbolic batch size
        (`jax.export`, shape polymorphism).
    Returns:
      A pure function, safe to call inside `jax.jit` (parameters are closed over as static values).
    Raises:
      ValueError: unknown name or preset (lists the valid ones), unknown parameter (lists the
        valid ones for that front-end); invalid values raise on the first call (at trace time).
    """
    if isinstance(cfg, str):
        cfg = {"preset": cfg}
    if hasattr(cfg, "to_dict"):
        cfg = cfg.to_dict()  # ml_collections.ConfigDict
    if not isinstance(cfg, Mapping):
        raise ValueError(f"cfg: expected a Mapping/ConfigDict with key 'name' or a preset name, got {type(cfg).__name__}")
    params = dict(cfg)
    if "preset" in params:
        preset = params.pop("preset")
        if preset not in PRESETS:
            raise ValueError(f"preset: unknown preset {preset!r}; valid presets: {sorted(PRESETS)}")
        params = {**PRESETS[preset], **params}
    if "name" not in params:
        raise ValueError(f"name: missing; expected one of {FRONTEND_NAMES} (or 'preset': one of {sorted(PRESETS)})")
    name = params.pop("name")
    if name not in _FRONTENDS:
        if name in PRESETS:
            return make_frontend({"preset": name, **params})
        raise ValueError(f"name: unknown front-end {name!r}; valid names: {FRONTEND_NAMES}")
    fn, valid = _FRONTENDS[name]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(f"front-end {name!r}: unknown parameter(s) {unknown}; valid parameters: {sorted(valid)}")
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}

    def frontend(wave: jax.Array) -> jax.Array:
        return fn(wave, **params)

    frontend.__name__ = f"frontend_{name}"
    frontend.__doc__ = f"{name} front-end with {params}: wave [B, N] -> features [B, T, F]."
    return frontend


# Named presets (plain dicts so configs can copy/override them). Windows/hops in samples.
PRESETS: dict[str, dict[str, Any]] = {
    # FSDD (8 kHz spoken digits): 25 ms window, 10 ms hop, 40 mels 20 Hz - 4 kHz, dB.
    "logmel40_8k": dict(name="logmel", sample_rate=8000, n_fft=256, win_length=200, hop_length=80,
                        n_mels=40, fmin=20.0, fmax=4000.0, log="db"),
    # Speech Commands (16 kHz): 30 ms window, 10 ms hop, 40 mels 20 Hz - 7.6 kHz (TF KWS recipe).
    "logmel40_16k": dict(name="logmel", sample_rate=16000, n_fft=512, win_length=480,
                         hop_length=160, n_mels=40, fmin=20.0, fmax=7600.0, log="db"),
    # IUSP / DCASE-style (16 kHz): 25 ms window, 10 ms hop, 64 mels 125 - 7500 Hz, dB.
    "logmel64_16k": dict(name="logmel", sample_rate=16000, n_fft=512, win_length=400,
                         hop_length=160, n_mels=64, fmin=125.0, fmax=7500.0, log="db"),
    # EAsT on OpenMIC (PaSST-style input): 32 kHz, n_fft 1024, 25 ms window, 10 ms hop,
    # 128 mels up to 16 kHz, natural log(x + 1e-5).
    "logmel128_32k_east": dict(name="logmel", sample_rate=32000, n_fft=1024, win_length=800,
                               hop_length=320, n_mels=128, fmin=0.0, fmax=16000.0,
                               log="log_eps", eps=1e-5),
    # EAsT on MagnaTagATune: 16 kHz, 96 mels up to 8 kHz (n_fft 512, hop 256 as in musicnn-style
    # MTAT pipelines; an assumption where the paper gives no STFT sizes), log(x + 1e-5).
    "logmel96_16k_east": dict(name="logmel", sample_rate=16000, n_fft=512, win_length=512,
                              hop_length=256, n_mels=96, fmin=0.0, fmax=8000.0,
                              log="log_eps", eps=1e-5),
    # 40 MFCCs from 40 mels (16 kHz, 25 ms / 10 ms), as in DML-style STFT/MFCC peer pairs.
    "mfcc40_16k": dict(name="mfcc", sample_rate=16000, n_fft=512, win_length=400, hop_length=160,
                       n_mels=40, n_mfcc=40, fmin=20.0, fmax=8000.0),
    # Linear-frequency log-power spectrogram (16 kHz, 25 ms / 10 ms, 257 bins), dB.
    "stft_16k": dict(name="stft", sample_rate=16000, n_fft=512, win_length=400, hop_length=160,
                     power=2.0, log="db"),
    # Log-CQT (16 kHz): 84 bins (7 octaves from C1 = 32.70 Hz), 12 bins/octave, 16 ms hop, dB.
    "cqt_16k": dict(name="logcqt", sample_rate=16000, hop_length=256, fmin=32.703195662574764,
                    n_bins=84, bins_per_octave=12),
    # Frame-level KD students (16 kHz, 25 ms / 10 ms, 64 mels 50 Hz - 8 kHz, log(x + 1e-6)).
    "logmel_frami": dict(name="logmel", sample_rate=16000, n_fft=512, win_length=400,
                         hop_length=160, n_mels=64, fmin=50.0, fmax=8000.0, log="log_eps",
                         eps=1e-6),
}



# Fields whose values are lengths in samples or frequencies tied to the rate: rescaled by `preset`.
_STFT_FRONTENDS = ("stft", "mel", "logmel", "mfcc")
_CQT_FRONTENDS = ("cqt", "logcqt")
# CQT bins are kept below this fraction of the Nyquist rate when a preset is moved to a lower
# rate (the margin configs/mrkd.py used: "CQT bins up to 0.9 x Nyquist").
_CQT_TOP_FRACTION = 0.9


def _scaled_length(n: int, old_sr: int, new_sr: int) -> int:
    """n * new_sr / old_sr samples rounded to the nearest integer, halves up (exact integers), >= 1."""
    return max(1, (2 * n * new_sr + old_sr) // (2 * old_sr))


def _next_pow2(n: int) -> int:
    """Smallest power of two >= n (n >= 1)."""
    return 1 << (int(n) - 1).bit_length()


def _check_rate(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{field}: expected a positive integer rate in Hz, got {value!r}")
    if not value > 0 or float(value) != int(value):
        raise ValueError(f"{field}: expected a positive integer rate in Hz, got {value!r}")
    return int(value)


def preset(name: str, sample_rate: int | None = None, **overrides: Any) -> dict[str, Any]:
    """A copy of the named preset, its analysis rescaled to `sample_rate`, then `overrides`.

    When `sample_rate` (Hz) differs from the preset's, the sample-rate-dependent fields change so
    that the analysis is the same in seconds and Hz:
      - win_length, hop_length (STFT-based: "stft", "mel", "logmel", "mfcc"): scaled by
        new_rate / preset_rate and rounded to the nearest integer, halves rounded up (exact
        integer arithmetic: 400 samples at 16 kHz -> 1103 at 44.1 kHz, 1102.5 rounded up).
        Missing ones are first filled with `stft`'s defaults (win_length = n_fft, hop =
        win_length // 4) so the durations are kept.
      - n_fft: the smallest power of two >= n_fft * new_rate / preset_rate (so >= the new window,
        and the bin spacing in Hz is at most the preset's). For every preset here (n_fft = the
        next power of two >= the window) this is the next power of two >= the rescaled window at
        8, 22.05, 32, 44.1 and 48 kHz (tests/test_frontends_preset.py).
      - fmax: min(fmax, new_rate / 2) (clamped to the new Nyquist rate; None stays None, i.e. the
        Nyquist rate). fmin is kept (Hz).
      - CQT ("cqt", "logcqt"): hop_length scaled as above, then up to the next power of two (each
        octave's decimation by 2 then keeps an integer hop, as librosa.cqt requires); n_bins kept,
        or reduced so the top bin stays below 0.9 x the new Nyquist rate:
        min(n_bins, floor(bins_per_octave * log2(0.9 * new_rate / 2 / fmin))).
      - sample_rate: the new rate. Every other field is copied unchanged.
    With sample_rate None or equal to the preset's, the result is a plain copy (identity).

    `overrides` are then set as given (nothing is re-derived from them, e.g. an overridden
    win_length does not change n_fft): a recipe's own choices, such as another rounding of the
    window or a full-band fmax.

    Args:
      name: a key of `PRESETS`.
      sample_rate: target rate in Hz (a positive integer), or None for the preset's own.
      overrides: parameters of the preset's front-end (as `make_frontend` accepts them).
    Returns:
      A new dict for `make_frontend` (``fn(wave [B, N]) -> [B, T, F]``).
    Raises:
      ValueError: unknown preset (lists them), a non-positive or non-integer sample_rate, an
        override that is not a parameter of the preset's front-end (lists the valid ones), or a
        rescaled preset that is empty (fmin >= the clamped fmax; fewer than 2 CQT bins), naming
        the preset and field.

    Source: configs/mrkd.py, configs/iusp.py and configs/frami.py rescaled presets this way
    (25 ms / 10 ms windows at the data set's rate); this is their rule in one place.
    """
    if not isinstance(name, str) or name not in PRESETS:
        raise ValueError(f"preset: unknown preset {name!r}; valid presets: {sorted(PRESETS)}")
    cfg = dict(PRESETS[name])
    fe_name = cfg["name"]
    valid = _FRONTENDS[fe_name][1]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"preset {name!r} ({fe_name!r} front-end): unknown override(s) {unknown}; "
                         f"valid parameters: {sorted(valid)}")
    if sample_rate is not None:
        new = _check_rate(sample_rate, f"preset {name!r}: sample_rate")
        old = _check_rate(cfg.get("sample_rate"), f"PRESETS[{name!r}]['sample_rate']")
        if new != old:
            cfg = _rescale(cfg, name, old, new)
    cfg.update(overrides)
    return cfg


def _rescale(cfg: dict[str, Any], name: str, old: int, new: int) -> dict[str, Any]:
    """`preset`'s rescaling of one preset dict from `old` to `new` Hz (see `preset`)."""
    fe_name = cfg["name"]
    nyq = new / 2.0
    cfg["sample_rate"] = new
    if fe_name in _STFT_FRONTENDS:
        n_fft, win, hop = _stft_params(cfg.get("n_fft", 512 if fe_name == "stft" else 2048),
                                       cfg.get("win_length"), cfg.get("hop_length"))
        win_new = _scaled_length(win, old, new)
        cfg["win_length"] = win_new
        cfg["hop_length"] = _scaled_length(hop, old, new)
        cfg["n_fft"] = _next_pow2(max(win_new, -(-n_fft * new // old)))
    if cfg.get("fmax") is not None:
        cfg["fmax"] = min(float(cfg["fmax"]), nyq)
        if float(cfg.get("fmin", 0.0)) >= cfg["fmax"]:
            raise ValueError(f"preset {name!r} at {new} Hz: fmin={cfg.get('fmin')} Hz >= fmax clamped to "
                             f"the Nyquist rate {cfg['fmax']} Hz; pass fmin= / fmax= overrides")
    if fe_name in _CQT_FRONTENDS:
        sig = inspect.signature(cqt).parameters
        hop = cfg.get("hop_length", sig["hop_length"].default)
        fmin = float(cfg.get("fmin", sig["fmin"].default))
        bpo = int(cfg.get("bins_per_octave", sig["bins_per_octave"].default))
        n_bins = int(cfg.get("n_bins", sig["n_bins"].default))
        cfg["hop_length"] = _next_pow2(_scaled_length(hop, old, new))
        top = math.floor(bpo * math.log2(_CQT_TOP_FRACTION * nyq / fmin)) if fmin < nyq else 0
        cfg["n_bins"] = min(n_bins, top)
        if cfg["n_bins"] < 2:
            raise ValueError(f"preset {name!r} at {new} Hz: n_bins={cfg['n_bins']} below "
                             f"{_CQT_TOP_FRACTION} x Nyquist from fmin={fmin} Hz; expected >= 2")
    return cfg

_register()
FRONTEND_NAMES: tuple[str, ...] = tuple(sorted(_FRONTENDS))
