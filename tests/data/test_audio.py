"""`load_audio` on damaged files: one-line `AudioError`s that name the file."""

import os

import numpy as np
import pytest
import soundfile as sf

from kdjax.data.audio import AudioError, load_audio


@pytest.fixture
def clip(data_dir) -> tuple[np.ndarray, int]:
    """A real FSDD recording (8 kHz, 2384 samples)."""
    return sf.read(data_dir / "fsdd" / "audio" / "0_george_0.flac", dtype="float32")


@pytest.mark.parametrize("subtype, frame_bytes", [("PCM_16", 2), ("PCM_24", 3), ("FLOAT", 4)])
def test_truncated_wav_names_file_and_both_frame_counts(clip, tmp_path, subtype, frame_bytes):
    wave, sr = clip
    path = tmp_path / "cut.wav"
    sf.write(path, wave, sr, subtype=subtype)
    np.testing.assert_allclose(load_audio(path, expected_sr=sr), wave, atol=1e-4)  # intact: fine
    cut_frames = 500
    with open(path, "r+b") as f:  # the header still declares every frame
        f.truncate(os.path.getsize(path) - cut_frames * frame_bytes)
    with pytest.raises(AudioError) as e:
        load_audio(path, expected_sr=sr)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg
    assert f"declares {len(wave)} frames" in msg and f"holds {len(wave) - cut_frames}" in msg


def test_truncated_stereo_wav(clip, tmp_path):
    wave, sr = clip
    path = tmp_path / "cut2.wav"
    sf.write(path, np.stack([wave, wave], 1), sr, subtype="PCM_16")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 7)  # 1.75 frames of 4 bytes: 2 frames lost
    with pytest.raises(AudioError, match=f"declares {len(wave)} frames.*holds {len(wave) - 2}"):
        load_audio(path)


def test_wav_with_trailing_chunk_is_not_truncated(clip, tmp_path):
    """Bytes after the data chunk (a LIST chunk, padding) are no truncation."""
    wave, sr = clip
    path = tmp_path / "tail.wav"
    sf.write(path, wave, sr, subtype="PCM_16")
    with open(path, "ab") as f:
        f.write(b"LIST\x04\x00\x00\x00INFO")
    assert load_audio(path, expected_sr=sr).shape == wave.shape
