"""Config entry point: `make_frontend(cfg)`, the named `PRESETS`, `FRONTEND_NAMES` and the
`_fe_*` builders behind each front-end name.

`make_frontend(cfg)` with `cfg["name"]` in `FRONTEND_NAMES` (or a key of `PRESETS`) returns
``fn(wave [B, N] float32) -> features [B, T, F]``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from kdjax.frontends._checks import _check_wave
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
             amin: float = 1e-10, top_db: float | None = 80.0, eps: float = 1e-6) -> jax.Array:
    """Linear-frequency (log) spectrogram [..., T, n_fft // 2 + 1]; log=None|"db"|"log_eps"."""
    del sample_rate
    s = spectrogram(x, n_fft=n_fft, win_length=win_length, hop_length=hop_length, window=window,
                    center=center, pad_mode=pad_mode, power=power)
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


_register()
FRONTEND_NAMES: tuple[str, ...] = tuple(sorted(_FRONTENDS))
