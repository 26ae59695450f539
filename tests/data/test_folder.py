"""Generic folder + CSV source on a generated miniature folder."""

import numpy as np
import pytest
import soundfile as sf

from kdjax.data import folder
from kdjax.data.audio import DatasetNotFoundError


@pytest.fixture
def mini(tmp_path):
    (tmp_path / "clips").mkdir()
    rows = [("a", "dog", "dog;rain", 1, "train"), ("b", "rain", "rain", 1, "test"),
            ("c", "cat", "cat;dog", 2, "train"), ("d", "dog", "dog", 3, "validation")]
    lines = ["filename,label,tags,fold,set"]
    for stem, lab, tags, fold, s in rows:
        sf.write(tmp_path / "clips" / f"{stem}.flac", np.full(800, 0.25, np.float32), 8000)
        lines.append(f"clips/{stem}.wav,{lab},{tags},{fold},{s}")  # .wav in CSV, .flac on disk
    (tmp_path / "metadata.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_single_label_folds_and_splits(mini):
    s = folder.source("all", root=mini, fold_column="fold")
    assert s.class_names == ["cat", "dog", "rain"] and s.sample_rate == 8000 and not s.multi_label
    np.testing.assert_array_equal(s[0]["labels"], [0, 1, 0])
    np.testing.assert_allclose(s[0]["audio"], 0.25)
    assert len(folder.source("fold1", root=mini, fold_column="fold")) == 2
    assert [r.meta["filename"] for r in folder.source("train_fold1", root=mini, fold_column="fold").records] == [
        "clips/c.wav", "clips/d.wav"]
    assert len(folder.source("train", root=mini, split_column="set")) == 2
    with pytest.raises(ValueError, match="unknown split"):
        folder.source("fold9", root=mini, fold_column="fold")


def test_multi_label(mini):
    s = folder.source("all", root=mini, label_column="tags", label_sep=";")
    assert s.multi_label and s.class_names == ["cat", "dog", "rain"]
    np.testing.assert_array_equal(np.stack([r.labels for r in s.records]),
                                  [[0, 1, 1], [0, 0, 1], [1, 1, 0], [0, 1, 0]])


def test_errors(mini, tmp_path_factory):
    with pytest.raises(ValueError, match="not in class_names"):
        folder.source("all", root=mini, class_names=["dog", "rain"])
    with pytest.raises(ValueError, match="lacks column"):
        folder.source("all", root=mini, label_column="nope")
    (mini / "clips" / "a.flac").unlink()
    with pytest.raises(DatasetNotFoundError, match="a.wav"):
        folder.source("all", root=mini)
    with pytest.raises(DatasetNotFoundError, match="metadata.csv"):
        folder.source("all", root=tmp_path_factory.mktemp("empty"))
