"""Spectral front-ends in pure jnp: STFT, mel filterbank, log-mel, MFCC, deltas, CQT, resampling.

Every function is jit-able, differentiable with respect to the waveform, and batched over any
leading axes. Feature layout everywhere is **time frames first, then frequency**:
``wave [..., N] -> features [..., T, F]`` (librosa returns ``[..., F, T]``; transpose to compare).

Units: sample rates in Hz, lengths (n_fft, win_length, hop_length) in samples, frequencies in
Hz, levels in dB (10 log10 of power). All parameters that set array shapes are static Python
values (they are baked into the traced program); waveforms are the only traced inputs.

Numerics follow librosa 0.11 (`librosa.stft`, `librosa.filters.mel`,
`librosa.feature.melspectrogram`, `librosa.power_to_db`, `librosa.feature.mfcc`,
`librosa.feature.delta`, `librosa.cqt`); tests/test_frontends.py measures the agreement.

Entry point for configs: `make_frontend(cfg)` with `cfg["name"]` in `FRONTEND_NAMES` (or a key of
`PRESETS`) returns ``fn(wave [B, N] float32) -> features [B, T, F]``; `preset(name,
sample_rate=...)` returns a named preset's config, rescaled to another sample rate. The
STFT-based front-ends take export options (`stft_impl="dft"`, `dft_dtype`, `framing`; see
`stft`). Overview: docs/frontends.md.

Modules (this package re-exports their public API; import from `kdjax.frontends`):
  stft.py      windows, framing, `stft`, `spectrogram` (magnitude / power)
  mel.py       mel scale and filterbank, `mel_spectrogram`, `power_to_db`, `log_mel`,
               `dct_matrix`, `mfcc`, `deltas`
  cqt.py       `cqt_frequencies`, `cqt`, `log_cqt`
  resample.py  `resample`
  registry.py  `make_frontend`, `PRESETS`, `preset`, `FRONTEND_NAMES`
The functions `stft`, `cqt` and `resample` share their modules' names, so the package attributes
`kdjax.frontends.stft` etc. are the functions; reach a module's private helpers with
``from kdjax.frontends.stft import _frame`` (not ``import kdjax.frontends.stft as m``).
"""

from kdjax.frontends.cqt import cqt, cqt_frequencies, log_cqt
from kdjax.frontends.mel import (
    dct_matrix,
    deltas,
    hz_to_mel,
    log_mel,
    mel_filterbank,
    mel_frequencies,
    mel_spectrogram,
    mel_to_hz,
    mfcc,
    power_to_db,
)
from kdjax.frontends.registry import FRONTEND_NAMES, PRESETS, make_frontend, preset
from kdjax.frontends.resample import resample
from kdjax.frontends.stft import get_window, num_frames, spectrogram, stft

__all__ = [
    "FRONTEND_NAMES",
    "PRESETS",
    "cqt",
    "cqt_frequencies",
    "dct_matrix",
    "deltas",
    "get_window",
    "hz_to_mel",
    "log_cqt",
    "log_mel",
    "make_frontend",
    "mel_filterbank",
    "mel_frequencies",
    "mel_spectrogram",
    "mel_to_hz",
    "mfcc",
    "num_frames",
    "power_to_db",
    "preset",
    "resample",
    "spectrogram",
    "stft",
]
