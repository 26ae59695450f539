"""Reading audio files with errors that name the file and what was expected.

Every dataset source decodes through `load_audio`, so a corrupt, truncated, empty or
wrongly-sampled file fails the same way everywhere: a one-line `AudioError`
(a `ValueError`) that names the path.
"""

from __future__ import annotations

import os
import struct

import numpy as np
import soundfile as sf


class AudioError(ValueError):
    """An audio file that cannot be used: unreadable, truncated, empty, or of another sample rate."""


class DatasetNotFoundError(FileNotFoundError):
    """A dataset directory or archive is missing; the message says where to put it."""


def load_audio(
    path: str | os.PathLike,
    *,
    expected_sr: int | None = None,
    mono: bool = True,
    min_samples: int = 1,
) -> np.ndarray:
    """Decodes an audio file (WAV, FLAC, OGG... anything libsndfile reads) to float32.

    Args:
      path: file path.
      expected_sr: the sample rate (Hz) the dataset declares; a file with another
        rate raises (resample explicitly instead of silently training on the
        wrong rate). None accepts any rate.
      mono: average channels to one (`[N]`); otherwise return `[N, channels]`.
      min_samples: fewer decoded samples than this raises (empty files).

    Returns:
      float32 waveform in [-1, 1], shape `[N]` (mono) or `[N, channels]`.

    Raises:
      AudioError: unreadable/corrupt file, truncated file (a WAV whose header declares
        more frames than the file holds: libsndfile would silently return the
        shorter audio), empty file, or sample rate != expected_sr. The message
        names the file and what was expected.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise AudioError(f"{path}: audio file not found")
    try:
        wave, sr = sf.read(path, dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError/RuntimeError/TypeError
        raise AudioError(
            f"{path}: cannot decode audio ({type(e).__name__}: {e}); expected a readable "
            "WAV/FLAC/OGG file"
        ) from None
    declared = wav_declared_frames(path)
    if declared is not None and wave.shape[0] < declared:
        raise AudioError(
            f"{path}: truncated audio file: its header declares {declared} frames but the file "
            f"holds {wave.shape[0]} (re-copy or re-export it)"
        )
    if expected_sr is not None and sr != expected_sr:
        raise AudioError(
            f"{path}: sample rate is {sr} Hz, expected {expected_sr} Hz (resample the file or "
            "set the dataset's sample_rate)"
        )
    if wave.shape[0] < min_samples:
        raise AudioError(
            f"{path}: audio is empty ({wave.shape[0]} samples), expected at least {min_samples}"
        )
    if not np.all(np.isfinite(wave)):
        raise AudioError(f"{path}: audio contains NaN/inf samples")
    return wave.mean(axis=1) if mono else wave


# WAV format tags whose data chunk is whole frames of `block_align` bytes (PCM, IEEE float,
# A-law, mu-law, WAVE_FORMAT_EXTENSIBLE); compressed formats (ADPCM...) are not checked.
_FRAMED_WAV_FORMATS = (0x0001, 0x0003, 0x0006, 0x0007, 0xFFFE)


def wav_declared_frames(path: str | os.PathLike) -> int | None:
    """Frame count a RIFF/WAVE header declares (`data` chunk bytes // block align), or None.

    libsndfile clamps a WAV's frame count to the bytes present, so a truncated WAV
    reads "successfully" with fewer frames; this reads the header itself.

    Returns:
      The declared number of frames; None for non-WAV files, RF64/W64, compressed
      WAV formats, streaming headers with an unknown data size (0 or 0xFFFFFFFF),
      or a header that cannot be parsed (the decoder reports those).

    Source: Microsoft RIFF/WAVE spec (`fmt ` chunk: format tag, channels, rate,
    byte rate, block align; `data` chunk size in bytes).
    """
    try:
        with open(path, "rb") as f:
            riff = f.read(12)
            if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
                return None
            block_align = fmt_tag = None
            while True:
                head = f.read(8)
                if len(head) < 8:
                    return None
                cid, size = head[:4], struct.unpack("<I", head[4:])[0]
                if cid == b"fmt ":
                    fmt = f.read(size + (size & 1))
                    if len(fmt) < 16:
                        return None
                    fmt_tag, _, _, _, block_align = struct.unpack("<HHIIH", fmt[:14])
                elif cid == b"data":
                    if (
                        block_align is None
                        or fmt_tag not in _FRAMED_WAV_FORMATS
                        or block_align == 0
                    ):
                        return None
                    if size in (0, 0xFFFFFFFF):
                        return None
                    return size // block_align
                else:
                    f.seek(size + (size & 1), os.SEEK_CUR)  # chunks are padded to even sizes
    except OSError:
        return None


def audio_info(path: str | os.PathLike) -> tuple[int, int]:
    """Returns (sample rate in Hz, number of frames) without decoding; raises AudioError."""
    path = os.fspath(path)
    try:
        info = sf.info(path)
    except Exception as e:
        raise AudioError(f"{path}: cannot read audio header ({type(e).__name__}: {e})") from None
    return int(info.samplerate), int(info.frames)


def fit_length(wave: np.ndarray, length: int, *, mode: str = "start", rng=None) -> np.ndarray:
    """Pads with zeros or crops a waveform `[N]` to exactly `length` samples.

    Args:
      wave: `[N]` float waveform.
      length: output length in samples.
      mode: where to crop/pad: "start" (keep the beginning, pad at the end),
        "center" (centre the clip), "random" (random crop offset / random pad
        offset; needs `rng`, a `np.random.Generator`).

    Returns:
      `[length]` waveform, same dtype.

    Raises:
      ValueError: unknown mode, or mode="random" without rng.
    """
    n = wave.shape[0]
    if mode not in ("start", "center", "random"):
        raise ValueError(f"fit_length: mode={mode!r}, expected 'start', 'center' or 'random'")
    if mode == "random" and rng is None:
        raise ValueError("fit_length: mode='random' needs rng (a numpy Generator)")
    if n == length:
        return wave
    if n > length:
        if mode == "start":
            off = 0
        elif mode == "center":
            off = (n - length) // 2
        else:
            off = int(rng.integers(0, n - length + 1))
        return wave[off : off + length]
    pad = length - n
    if mode == "start":
        left = 0
    elif mode == "center":
        left = pad // 2
    else:
        left = int(rng.integers(0, pad + 1))
    return np.pad(wave, (left, pad - left))
