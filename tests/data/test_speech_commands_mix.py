"""Speech Commands mixtures built from the real clips: labels, splits, audio, determinism."""

import numpy as np
import pytest

from kdjax.data import speech_commands, speech_commands_mix
from kdjax.data.audio import load_audio


def test_mixtures(data_dir):
    s = speech_commands_mix.source("validation", num_mixtures=40, seed=1, data_dir=data_dir)
    base = speech_commands.source("validation", data_dir=data_dir)
    assert len(s) == 40 and s.multi_label and s.num_classes == 10 and s.sample_rate == 16000
    assert s.class_names == list(speech_commands.KEYWORDS)
    lab = np.stack([r.labels for r in s.records])
    assert set(lab.sum(1).tolist()) == {1.0, 2.0, 3.0}
    ids = base.label_ids()
    silence = speech_commands.CLASS_NAMES.index("_silence_")
    for r in s.records:
        m = r.meta
        assert all(ids[j] < 10 for j in m["keywords"]) and all(ids[j] == silence for j in m["noise"])
        assert len({int(ids[j]) for j in m["keywords"]}) == len(m["keywords"])  # distinct words
        np.testing.assert_array_equal(r.labels, np.eye(10, dtype=np.float32)[[ids[j] for j in m["keywords"]]].sum(0))
        assert len(set(m["starts"])) == len(m["starts"]) and all(x % 16000 == 0 for x in m["starts"])
    # deterministic recipe, and the audio is noise + gained keywords in their 1 s slots
    again = speech_commands_mix.source("validation", num_mixtures=40, seed=1, data_dir=data_dir)
    assert [r.meta for r in again.records] == [r.meta for r in s.records]
    i = int(np.argmax(lab.sum(1)))
    m = s.records[i].meta
    ref = np.concatenate([load_audio(base.records[j].path)[:16000] for j in m["noise"]])
    ref = np.pad(ref, (0, 48000 - len(ref)))
    for j, g, st in zip(m["keywords"], m["gains"], m["starts"], strict=True):
        w = load_audio(base.records[j].path)[:16000]
        ref[st: st + len(w)] += g * w
    ref = ref / max(1.0, np.abs(ref).max())
    x = s[i]
    assert x["audio"].shape == (48000,) and x["audio"].dtype == np.float32
    np.testing.assert_allclose(x["audio"], ref, atol=1e-6)
    np.testing.assert_array_equal(x["label_mask"], np.ones(10, np.float32))


def test_splits_are_speaker_disjoint(data_dir):
    speakers = {}
    for split in ("train", "validation", "test"):
        s = speech_commands_mix.source(split, num_mixtures=200, data_dir=data_dir)
        speakers[split] = {sp for r in s.records for sp in r.meta["speakers"]}
        assert s.name == f"speech_commands_mix/speech_commands/{split}"
    assert not speakers["train"] & speakers["validation"]
    assert not speakers["train"] & speakers["test"] and not speakers["validation"] & speakers["test"]


def test_bad_arguments(data_dir):
    with pytest.raises(ValueError, match="max_keywords"):
        speech_commands_mix.source("test", max_keywords=0, data_dir=data_dir)
    with pytest.raises(ValueError, match="duration_s"):
        speech_commands_mix.source("test", duration_s=2, max_keywords=3, data_dir=data_dir)
    with pytest.raises(ValueError, match="gain_db"):
        speech_commands_mix.source("test", gain_db=(0.0, -6.0), data_dir=data_dir)
