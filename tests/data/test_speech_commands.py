"""Speech Commands v2 (real official test set) re-split by speaker, and the noisy variant."""

import collections

import numpy as np
import pytest
import soundfile as sf

from kdjax.data import noisy_speech_commands, speech_commands
from kdjax.data.audio import DatasetNotFoundError


def test_real_counts_classes_and_speaker_disjoint(data_dir):
    splits = {s: speech_commands.records(s, data_dir) for s in ("train", "validation", "test", "all")}
    assert len(splits["all"]) == 4890
    assert sum(len(splits[s]) for s in ("train", "validation", "test")) == 4890
    counts = collections.Counter(int(r.labels.argmax()) for r in splits["all"])
    assert len(counts) == 12 and counts[11] == 408 and counts[10] == 408
    # roughly 80/10/10 and every class present everywhere
    assert 0.7 < len(splits["train"]) / 4890 < 0.9
    for s in ("train", "validation", "test"):
        assert len({int(r.labels.argmax()) for r in splits[s]}) == 12
    spk = {s: {r.meta["speaker"] for r in splits[s] if r.meta["speaker"]} for s in splits}
    assert not spk["train"] & spk["validation"]
    assert not spk["train"] & spk["test"]
    assert not spk["validation"] & spk["test"]
    unk = [r for r in splits["all"] if r.meta["word"] not in speech_commands.KEYWORDS and r.meta["word"] != "_silence_"]
    assert len(unk) == 408 and "backward" in {r.meta["word"] for r in unk}
    # deterministic
    assert [r.path for r in speech_commands.records("validation", data_dir)] == [r.path for r in splits["validation"]]


def test_which_set_matches_upstream_definition():
    # the official test set was made with the unsalted hash: its speakers land in "test"
    assert speech_commands.which_set("022cd682") == "test"


def test_noisy_variant(data_dir):
    src = noisy_speech_commands.source("validation", duration_s=2, seed=3, data_dir=data_dir)
    base = speech_commands.source("validation", data_dir=data_dir)
    train = noisy_speech_commands.source("train", duration_s=2, data_dir=data_dir)
    noise_paths = {src.records[j].path for j in src.noise_indices}
    assert not noise_paths & {train.records[j].path for j in train.noise_indices}
    i = next(k for k, r in enumerate(src.records) if r.meta["word"] == "yes")
    ex = src[i]
    assert ex["audio"].shape == (32000,) and ex["audio"].dtype == np.float32
    np.testing.assert_array_equal(ex["labels"], base[i]["labels"])
    np.testing.assert_array_equal(src[i]["audio"], ex["audio"])  # deterministic per index
    start, noise_ids = src.placement(i)
    kw = base.load(i)
    noise = np.concatenate([base.load(j) for j in noise_ids])[:32000]
    np.testing.assert_allclose(ex["audio"] - noise, np.pad(kw, (start, 32000 - start - len(kw))), atol=1e-6)
    assert all(src.records[j].path in noise_paths for j in noise_ids)
    starts = {src.placement(k)[0] for k in range(20)}
    assert len(starts) > 10  # offsets vary
    other = noisy_speech_commands.source("validation", duration_s=8, seed=4, data_dir=data_dir)
    assert other[i]["audio"].shape == (128000,)
    assert other.placement(i) != src.placement(i)


def test_full_layout_with_lists(tmp_path):
    root = tmp_path / "speech_commands_v2"
    for word, spk in [("yes", "aaaaaaaa"), ("yes", "bbbbbbbb"), ("bed", "cccccccc"), ("go", "dddddddd")]:
        (root / word).mkdir(parents=True, exist_ok=True)
        sf.write(root / word / f"{spk}_nohash_0.wav", np.zeros(16000, np.float32), 16000)
    (root / "_background_noise_").mkdir()
    sf.write(root / "_background_noise_" / "white.wav", np.zeros(16000 * 10, np.float32), 16000)
    (root / "validation_list.txt").write_text("yes/bbbbbbbb_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("go/dddddddd_nohash_0.wav\n")
    tr = speech_commands.source("train", data_dir=tmp_path)
    assert [int(r.labels.argmax()) for r in tr.records] == [10, 0] + [11] * 8  # bed -> _unknown_
    assert tr[2]["audio"].shape == (16000,)
    va = speech_commands.source("validation", data_dir=tmp_path)
    assert [r.meta["word"] for r in va.records] == ["yes", "_silence_"]
    te = speech_commands.source("test", data_dir=tmp_path)
    assert [r.meta["word"] for r in te.records] == ["go", "_silence_"]
    assert te.records[1].meta["start"] == 9 * 16000


def test_missing(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="speech_commands_v2_test"):
        speech_commands.source("train", data_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown split"):
        speech_commands.records("dev", tmp_path)
