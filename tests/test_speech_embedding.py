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


def test_tokens_to_frames_hand_example():
    # K = 3 tokens centred on frames 0, 4, 8; T = 10 frames (frame 9 beyond the last token)
    d = np.array([[0.2, 0.5, 0.3]], np.float32)
    out = np.asarray(se.tokens_to_frames(d, num_frames=10, frames_per_token=4))
    raw = np.array([0.2, 0.275, 0.35, 0.425, 0.5, 0.45, 0.4, 0.35, 0.3, 0.3])
    np.testing.assert_allclose(out[0], raw / raw.sum(), rtol=1e-6)
    # frames_per_token = 1 and T = K: the identity
    d2 = np.array([[0.1, 0.6, 0.3], [0.3, 0.3, 0.4]], np.float32)
    np.testing.assert_allclose(
        np.asarray(se.tokens_to_frames(d2, num_frames=3, frames_per_token=1)), d2, rtol=1e-6
    )
    with pytest.raises(ValueError, match=r"\[B, K\]"):
        se.tokens_to_frames(d[0], num_frames=10, frames_per_token=4)


def test_rollout_frames_is_the_class_row_then_the_frame_map():
    from kdjax.losses import rollout_frame_distribution

    rng = np.random.default_rng(0)
    att = rng.random((2, 1, 2, 5, 5)).astype(np.float32)  # L=2, B=1, H=2, class token + K=4
    att /= att.sum(-1, keepdims=True)
    got = np.asarray(se.rollout_frames(att, num_frames=13, frames_per_token=4, cls_index=0))
    row = np.asarray(rollout_frame_distribution(att, cls_index=0))
    np.testing.assert_allclose(
        got, np.asarray(se.tokens_to_frames(row, num_frames=13, frames_per_token=4)), rtol=1e-6
    )
    assert got.shape == (1, 13)


def test_temporal_kd_config_teacher_option_and_errors():
    from configs import temporal_kd

    default = temporal_kd.get_config("variant=local")
    assert "embed" not in default.stages and default.stages.teacher.models.teacher.frontend
    cfg = temporal_kd.get_config("variant=local,teacher=speech_embedding,data=sc4")
    assert cfg.run.split(",")[:3] == ["embed", "teacher", "rollout"]
    t = cfg.stages.teacher
    assert t.models.teacher.input == "batch.embedding" and "frontend" not in t.models.teacher
    assert t.data.join.embedding == "{stage:embed}/arrays/{split}/embedding.npy"
    assert t.early_stopping.patience == 5
    kw = cfg.stages.rollout.cache.outputs.rollout.kw
    # 4 s at the 20 ms hop: 201 centred frames, 4 frames per 80 ms token
    assert (kw.num_frames, kw.frames_per_token, kw.cls_index) == (201, 4.0, 0)
    for bad in ("variant=paper,teacher=speech_embedding", "teacher=speech_embedding,target=live"):
        with pytest.raises(ValueError, match="teacher=speech_embedding"):
            temporal_kd.get_config(bad)
    with pytest.raises(ValueError, match="teacher='w2v'"):
        temporal_kd.get_config("teacher=w2v")


@needs_oww
def test_temporal_kd_tiny_embed_teacher_rollout_on_real_clips(tmp_path, data_dir):
    """embed -> teacher (on the joined sequences) -> rollout on real noisy Speech Commands clips:
    the cached sequences equal the extractor on the same audio; the cached target equals a
    fresh teacher forward's rollout row mapped onto the front-end's frames, which number
    exactly 4 per token (the students' front-end on the same clips)."""
    import jax

    from configs import temporal_kd
    from kdjax.data import get_source
    from kdjax.data.pipeline import eval_batches
    from kdjax.train import program, stages
    from kdjax.train.checkpoint import load_best_variables
    from kdjax.train.forward import forward

    cfg = temporal_kd.get_config("variant=tiny,teacher=speech_embedding,stage=embed+teacher+rollout")
    stages.run_stages(cfg, str(tmp_path))
    d = cfg.stages.embed.data
    src = get_source(d.name, "test", **dict(d.kw))
    batch = next(eval_batches(src, clip_samples=int(d.clip_seconds * 16000), batch_size=4))
    emb = np.load(tmp_path / "embed" / "arrays" / "test" / "embedding.npy")
    assert emb.shape == (len(src), 26, 96)
    np.testing.assert_allclose(
        emb[:4], se.extract_batch(batch["audio"], 16000)["embedding"], atol=1e-5, rtol=0
    )
    roll = np.load(tmp_path / "rollout" / "arrays" / "test" / "rollout.npy")
    assert roll.shape == (len(src), 101) and np.allclose(roll.sum(-1), 1.0, atol=1e-5)
    tc = cfg.stages.teacher
    prog = program.build_program(tc, src.num_classes, src.sample_rate)
    v = {"teacher": load_best_variables(tmp_path / "teacher", "teacher")}
    ns = forward(prog, v, {"embedding": emb[:4]}, jax.random.key(0), train=False)[0]
    fresh = se.rollout_frames(
        ns["teacher"]["feats"]["attention"], num_frames=101, frames_per_token=4, cls_index=0
    )
    np.testing.assert_allclose(roll[:4], np.asarray(fresh), rtol=1e-5, atol=1e-7)
    # the students' front-end: 101 frames for the 2 s clips, frame 4 k centred on token k
    from kdjax.frontends.registry import make_frontend

    feats = make_frontend(dict(cfg.stages.temporal_cnn_l050.models.student.frontend))(
        batch["audio"][:1]
    )
    assert feats.shape[1] == 101
