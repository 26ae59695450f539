"""kdjax.embeddings.speech_embedding: the openWakeWord 0.4.0 speech-embedding extractor.

References: openWakeWord's own `AudioFeatures.embed_clips` (independent code: its mel transform,
windowing and batching), the ONNX mel's measured framing (impulses), hand-computed token counts.
Skipped without the wheel: pip install --no-deps openwakeword==0.4.0 (and onnxruntime).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from kdjax.embeddings import speech_embedding as se

HAVE = all(importlib.util.find_spec(m) is not None for m in ("openwakeword", "onnxruntime"))
needs_oww = pytest.mark.skipif(not HAVE, reason="openwakeword 0.4.0 / onnxruntime not installed")


def _clip(data_dir):
    """A real 1 s Speech Commands test clip as (float [-1, 1], int16), 16 kHz."""
    sf = pytest.importorskip("soundfile")
    path = data_dir / "speech_commands_v2_test" / "audio" / "yes" / "022cd682_nohash_0.flac"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    x16, sr = sf.read(path, dtype="int16")
    assert sr == 16000 and x16.shape == (16000,)
    return x16.astype(np.float32) / 32768.0, x16


def test_token_counts_and_padding_by_hand():
    # K = S // 1280 + 1; padded length 1280 (K - 1) + 12512, 6256 zeros in front
    assert [se.num_tokens(s) for s in (1, 1279, 1280, 16000, 32000, 64000)] == [1, 1, 2, 13, 26, 51]
    np.testing.assert_array_equal(se.token_centres(16000), np.arange(13) * 1280)
    x = np.arange(1, 16001, dtype=np.float32)
    p = se.pad_for_centred_windows(x)
    assert p.shape == (12 * 1280 + 12512,)
    assert np.all(p[:6256] == 0) and p[6256] == 1 and p[6256 + 15999] == 16000
    assert np.all(p[6256 + 16000 :] == 0)
    with pytest.raises(ValueError, match="num_samples"):
        se.num_tokens(0)


def test_missing_package_names_the_pip_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "openwakeword" else real(n, *a)
    )
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps openwakeword==0.4.0"):
        se.model_dir()


@needs_oww
def test_mel_frame_centres_measured_with_impulses():
    # mel frame j is centred at sample 160 j + 256 (the alignment the padding relies on): an
    # impulse at p raises frame j most when p is nearest its centre
    m = se.SpeechEmbedding()
    silent = m.melspectrogram(np.zeros((1, 16000), np.float32))[0]
    for j in (10, 37, 80):
        x = np.zeros((1, 16000), np.float32)
        x[0, 160 * j + 256] = 10000.0
        rise = (m.melspectrogram(x)[0] - silent).sum(-1)
        assert int(np.argmax(rise)) == j


@needs_oww
def test_shapes_and_alignment_on_a_real_clip(data_dir):
    x, _ = _clip(data_dir)
    m = se.SpeechEmbedding()
    emb = se.extract(x, 16000, model=m)
    assert emb.shape == (13, 96) and emb.dtype == np.float32
    # token k == the model on mel frames 8 k ... 8 k + 75 of the padded clip, whose middle
    # (frame 8 k + 37.5, centred at sample 160 (8 k + 37.5) + 256 = 1280 k + 6256 of the padded
    # signal) is sample 1280 k of the clip. (The mel is clipped at 80 dB below the loudest bin
    # of its whole input, so a window cut out on its own would differ near silence.)
    padded = se.pad_for_centred_windows(x) * 32768.0
    mel = m.melspectrogram(padded[None])
    assert mel.shape == (1, 8 * 12 + 76, 32)
    for k in (0, 6, 12):
        centre = 160 * (8 * k + 37.5) + 256
        assert centre == 1280 * k + 6256 and padded[int(centre)] == x[1280 * k] * 32768.0
        np.testing.assert_allclose(
            m.embed_mel(mel[:, 8 * k : 8 * k + 76])[0, 0], emb[k], atol=1e-5, rtol=0
        )
    # a batch is the clips one by one
    b = se.extract_batch(np.stack([x, x[::-1].copy()]), 16000, model=m)["embedding"]
    np.testing.assert_allclose(b[0], emb, atol=1e-6)
    np.testing.assert_allclose(b[1], se.extract(x[::-1].copy(), model=m), atol=1e-6)
    with pytest.raises(ValueError, match="16000 Hz"):
        se.extract_batch(x[None], 8000, model=m)
    with pytest.raises(ValueError, match=r"\[B, S\]"):
        se.extract_batch(x, 16000, model=m)


@needs_oww
def test_equals_openwakeword_audio_features(data_dir):
    # the reference: openWakeWord's own AudioFeatures.embed_clips on the same padded int16 audio
    from openwakeword.utils import AudioFeatures

    x, x16 = _clip(data_dir)
    ref = AudioFeatures().embed_clips(se.pad_for_centred_windows(x16)[None], batch_size=1)
    ours = se.extract_batch(x[None], 16000)["embedding"]
    assert ref.shape == ours.shape == (1, 13, 96)
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)
