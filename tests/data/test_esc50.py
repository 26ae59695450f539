"""ESC-10 on the real shared copy, and the upstream ESC-50 layout on a miniature copy."""

import numpy as np
import pytest
import soundfile as sf

from kdjax.data import esc50
from kdjax.data.audio import DatasetNotFoundError


def test_esc10_real_folds_and_classes(data_dir):
    allsrc = esc50.source("all", subset="esc10", data_dir=data_dir)
    assert len(allsrc) == 400 and allsrc.num_classes == 10
    assert allsrc.class_names == [
        "dog", "rooster", "rain", "sea_waves", "crackling_fire",
        "crying_baby", "sneezing", "clock_tick", "helicopter", "chainsaw",
    ]
    np.testing.assert_array_equal(np.bincount(allsrc.label_ids(), minlength=10), [40] * 10)
    assert allsrc.sample_rate == 16000
    paths = set()
    for k in range(1, 6):
        test = esc50.source(f"test_fold{k}", subset="esc10", data_dir=data_dir)
        train = esc50.source(f"train_fold{k}", subset="esc10", data_dir=data_dir)
        val = esc50.source(f"validation_fold{k}", subset="esc10", data_dir=data_dir)
        fit = esc50.source(f"fit_fold{k}", subset="esc10", data_dir=data_dir)
        assert (len(test), len(train), len(val), len(fit)) == (80, 320, 80, 240)
        t = {r.path for r in test.records}
        assert not t & {r.path for r in train.records}
        assert not {r.path for r in val.records} & {r.path for r in fit.records}
        assert {r.path for r in val.records} <= {r.path for r in train.records}
        assert all(r.meta["fold"] == k for r in test.records)
        paths |= t
    assert len(paths) == 400
    # target -> label remapping, file name carries the ESC-50 target
    ex = allsrc[0]
    r = allsrc.records[0]
    assert r.path.endswith(".flac")
    assert int(r.path.rsplit("-", 1)[1].split(".")[0]) == r.meta["target"]
    assert esc50.ESC10_TARGETS[int(ex["labels"].argmax())] == r.meta["target"]
    assert ex["audio"].shape == (80000,) and ex["audio"].dtype == np.float32


def _mini_esc50(root, rows):
    (root / "esc50" / "meta").mkdir(parents=True)
    (root / "esc50" / "audio").mkdir()
    lines = ["filename,fold,target,category,esc10,src_file,take"]
    for fn, fold, target, cat, e10 in rows:
        lines.append(f"{fn},{fold},{target},{cat},{e10},1,A")
        sf.write(root / "esc50" / "audio" / fn, np.zeros(441, np.float32), 44100)
    (root / "esc50" / "meta" / "esc50.csv").write_text("\n".join(lines) + "\n")


def test_upstream_esc50_layout(tmp_path):
    rows = [
        (f"{f}-{i}-A-{t}.wav", f, t, {0: "dog", 41: "chainsaw", 5: "cat"}[t], t != 5)
        for i, (f, t) in enumerate([(1, 0), (2, 41), (3, 5), (4, 0), (5, 41), (1, 5)])
    ]
    _mini_esc50(tmp_path, rows)
    s50 = esc50.source("all", data_dir=tmp_path)
    assert len(s50) == 6 and s50.num_classes == 50 and s50.sample_rate == 44100
    assert s50.class_names[41] == "chainsaw" and s50.class_names[5] == "cat"
    s10 = esc50.source("all", subset="esc10", data_dir=tmp_path)
    assert len(s10) == 4 and s10.num_classes == 10
    assert [int(r.labels.argmax()) for r in s10.records] == [0, 9, 0, 9]
    assert len(esc50.source("train_fold1", subset="esc10", data_dir=tmp_path)) == 3
    assert len(esc50.source("fold3", data_dir=tmp_path)) == 1


def test_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="esc50.csv"):
        esc50.source("fold1", data_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown split"):
        esc50.split_folds("fold6")
    (tmp_path / "esc50" / "meta").mkdir(parents=True)
    (tmp_path / "esc50" / "meta" / "esc50.csv").write_text("filename,fold\nx.wav,1\n")
    with pytest.raises(ValueError, match="lacks column"):
        esc50.source("fold1", data_dir=tmp_path)


def test_esc10_module_alias(data_dir):
    from kdjax.data import esc50, get_source

    a = get_source("esc10", "fold2")
    b = esc50.source("fold2", subset="esc10")
    assert [r.path for r in a.records] == [r.path for r in b.records] and len(a) == 80
