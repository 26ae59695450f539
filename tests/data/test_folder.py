"""Generic folder + CSV source: a generated miniature folder and a folder of real FSDD clips."""

import numpy as np
import pytest
import soundfile as sf

from kdjax.data import folder, get_source
from kdjax.data.audio import AudioError, DatasetNotFoundError


@pytest.fixture
def mini(tmp_path):
    (tmp_path / "clips").mkdir()
    rows = [
        ("a", "dog", "dog;rain", 1, "train"),
        ("b", "rain", "rain", 1, "test"),
        ("c", "cat", "cat;dog", 2, "train"),
        ("d", "dog", "dog", 3, "validation"),
    ]
    lines = ["filename,label,tags,fold,set"]
    for stem, lab, tags, fold, s in rows:
        sf.write(tmp_path / "clips" / f"{stem}.flac", np.full(800, 0.25, np.float32), 8000)
        lines.append(f"clips/{stem}.wav,{lab},{tags},{fold},{s}")  # .wav in CSV, .flac on disk
    (tmp_path / "metadata.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


def _kw(**kw):
    return (
        dict(
            csv="labels.csv",
            audio_dir="audio",
            path_column="file",
            label_column="word",
            split_column="set",
            sample_rate=8000,
        )
        | kw
    )


def _files(src):
    return [r.meta["file"] for r in src.records]


def test_single_label_folds_and_splits(mini):
    s = folder.source("all", root=mini, fold_column="fold", sample_rate=8000)
    assert s.class_names == ["cat", "dog", "rain"] and s.sample_rate == 8000 and not s.multi_label
    np.testing.assert_array_equal(s[0]["labels"], [0, 1, 0])
    np.testing.assert_allclose(s[0]["audio"], 0.25)
    assert len(folder.source("fold1", root=mini, fold_column="fold", sample_rate=8000)) == 2
    tr = folder.source("train_fold1", root=mini, fold_column="fold", sample_rate=8000)
    assert [r.meta["filename"] for r in tr.records] == ["clips/c.wav", "clips/d.wav"]
    # validation_foldK is the next fold (ESC-50's convention), fit_foldK the rest of train_foldK
    va = folder.source("validation_fold1", root=mini, fold_column="fold", sample_rate=8000)
    fit = folder.source("fit_fold1", root=mini, fold_column="fold", sample_rate=8000)
    assert [r.meta["fold"] for r in va.records] == ["2"] and [
        r.meta["fold"] for r in fit.records
    ] == ["3"]
    assert len(folder.source("train", root=mini, split_column="set", sample_rate=8000)) == 2
    with pytest.raises(ValueError, match="unknown split"):
        folder.source("fold9", root=mini, fold_column="fold", sample_rate=8000)


def test_multi_label(mini):
    s = folder.source("all", root=mini, label_column="tags", label_sep=";", sample_rate=8000)
    assert s.multi_label and s.class_names == ["cat", "dog", "rain"]
    np.testing.assert_array_equal(
        np.stack([r.labels for r in s.records]), [[0, 1, 1], [0, 0, 1], [1, 1, 0], [0, 1, 0]]
    )


def test_errors(mini, tmp_path_factory):
    with pytest.raises(ValueError, match="not in class_names"):
        folder.source("all", root=mini, class_names=["dog", "rain"], sample_rate=8000)
    with pytest.raises(ValueError, match="lacks column"):
        folder.source("all", root=mini, label_column="nope", sample_rate=8000)
    (mini / "clips" / "a.flac").unlink()
    with pytest.raises(DatasetNotFoundError, match="a.wav"):
        folder.source("all", root=mini, sample_rate=8000)
    with pytest.raises(DatasetNotFoundError, match="metadata.csv"):
        folder.source("all", root=tmp_path_factory.mktemp("empty"), sample_rate=8000)


def test_train_validation_test_from_a_train_test_csv_with_audio_dir(corpus):
    tr, va, te = (
        folder.source(s, root=corpus, **_kw(val_fraction=0.25))
        for s in ("train", "validation", "test")
    )
    full = folder.source("train_full", root=corpus, **_kw())
    assert (len(tr), len(va), len(te), len(full)) == (36, 12, 12, 48)
    assert not set(_files(tr)) & set(_files(va))
    assert sorted(_files(tr) + _files(va)) == sorted(_files(full))
    assert {f.split("_")[2] for f in _files(te)} == {"0.flac"}
    # stratified: 3 of each digit's 12 train clips are held out
    np.testing.assert_array_equal(np.bincount(va.label_ids(), minlength=4), [3, 3, 3, 3])
    assert tr.class_names == va.class_names == te.class_names == ["one", "three", "two", "zero"]
    # deterministic, and independent of the CSV's row order; another seed holds out others
    assert _files(folder.source("validation", root=corpus, **_kw(val_fraction=0.25))) == _files(va)
    lines = (corpus / "labels.csv").read_text().splitlines()
    (corpus / "shuffled.csv").write_text("\n".join(lines[:1] + lines[:0:-1]) + "\n")
    shuffled = folder.source(
        "validation", root=corpus, **_kw(csv="shuffled.csv", val_fraction=0.25)
    )
    assert sorted(_files(shuffled)) == sorted(_files(va))
    other = folder.source("validation", root=corpus, **_kw(val_fraction=0.25, seed=1))
    assert sorted(_files(other)) != sorted(_files(va))
    # audio_dir: CSV paths are relative to <root>/<audio_dir>
    ref, sr = sf.read(corpus / "audio" / va.records[0].meta["file"], dtype="float32")
    assert sr == 8000 and va.records[0].path == str(corpus / "audio" / va.records[0].meta["file"])
    np.testing.assert_array_equal(va[0]["audio"], ref)
    with pytest.raises(DatasetNotFoundError, match=r"audio_dir"):
        folder.source("train", root=corpus, **_kw(audio_dir=""))


def test_train_validation_test_from_one_list(corpus):
    kw = dict(
        csv="all.csv",
        audio_dir="audio",
        path_column="file",
        label_column="word",
        sample_rate=8000,
        val_fraction=0.25,
        test_fraction=0.2,
    )
    tr, va, te = (folder.source(s, root=corpus, **kw) for s in ("train", "validation", "test"))
    assert (len(tr), len(va), len(te)) == (36, 12, 12)
    assert sorted(_files(tr) + _files(va) + _files(te)) == sorted(
        _files(folder.source("all", root=corpus, **kw))
    )
    np.testing.assert_array_equal(np.bincount(te.label_ids(), minlength=4), [3, 3, 3, 3])
    np.testing.assert_array_equal(np.bincount(va.label_ids(), minlength=4), [3, 3, 3, 3])
    # get_source (what a train config calls) reaches the same splits
    assert _files(get_source("folder", "test", root=corpus, **kw)) == _files(te)


def test_unknown_split_lists_the_valid_splits(mini, corpus):
    with pytest.raises(ValueError) as e:
        folder.source("fold9", root=mini, fold_column="fold", sample_rate=8000)
    msg = str(e.value)
    for name in (
        "'all'",
        "'fold1'",
        "'test_fold3'",
        "'train_fold2'",
        "'validation_fold1'",
        "'fit_fold1'",
    ):
        assert name in msg, msg
    with pytest.raises(ValueError) as e:  # a train/validation/test name with only a fold column
        folder.source("train", root=mini, fold_column="fold", sample_rate=8000)
    assert "'train_fold1'" in str(e.value) and "'validation_fold3'" in str(e.value), str(e.value)
    with pytest.raises(ValueError) as e:
        folder.source("dev", root=corpus, **_kw())
    for name in ("'all'", "'train'", "'validation'", "'test'", "'train_full'"):
        assert name in str(e.value), str(e.value)


def test_csv_errors_name_the_users_csv(corpus):
    with pytest.raises(ValueError) as e:
        folder.source("train", root=corpus, **_kw(label_column="label"))
    msg = str(e.value)
    assert f"the CSV {corpus / 'labels.csv'}" in msg and "official" not in msg


def test_sample_rate_comes_from_the_config_and_the_bad_file_is_named(corpus):
    # the first row's file has another rate: it (not the 59 good files) is the one blamed
    first = corpus / "audio" / "0_george_0.flac"
    wave, _ = sf.read(first, dtype="float32")
    sf.write(first, np.repeat(wave, 2), 16000)
    src = folder.source("all", root=corpus, **_kw())
    assert src.sample_rate == 8000 and src.records[0].path == str(first)
    with pytest.raises(AudioError, match=f"{first}: sample rate is 16000 Hz, expected 8000 Hz"):
        src[0]
    for i in range(1, len(src)):
        src[i]
    with pytest.raises(ValueError, match=r"missing required keyword\(s\) \['sample_rate'\]"):
        get_source("folder", "all", root=corpus, csv="labels.csv", audio_dir="audio")


def test_root_errors(tmp_path):
    with pytest.raises(ValueError, match="root"):
        folder.source("train", sample_rate=8000)
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "nowhere")):
        folder.source("train", root=tmp_path / "nowhere", sample_rate=8000)


def test_empty_string_means_unset(corpus):
    """configs/common.folder_data stores unset columns as "" (overridable from the command line)."""
    kw = _kw(split_column="", csv="all.csv", test_fraction=0.2)
    src = folder.source("test", root=corpus, label_sep="", fold_column="", **kw)
    assert not src.multi_label and len(src) == 12


def test_common_folder_data_block(corpus):
    """configs/common.folder_data: the same keys as common.data, and its kw reach the source."""
    import ml_collections

    from configs import common

    d = common.folder_data(
        str(corpus),
        "labels.csv",
        audio_dir="audio",
        path_column="file",
        label_column="word",
        split_column="set",
        sample_rate=8000,
        clip_seconds=1.0,
        val_fraction=0.25,
    )
    assert set(d) == set(common.data("fsdd", clip_seconds=1.0))
    assert d["name"] == "folder" and d["eval_split"] == "validation"
    d = ml_collections.ConfigDict(d)  # as a config holds it ("" columns survive)
    sizes = {
        s: len(get_source(d.name, s, **d.kw)) for s in (d.train_split, d.eval_split, d.test_split)
    }
    assert sizes == {"train": 36, "validation": 12, "test": 12}
