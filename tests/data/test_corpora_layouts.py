"""Miniature copies of the published layouts of the other corpora: parsing, splits,
label encodings/masks, and one-line errors for missing or malformed archives."""

import json

import numpy as np
import pytest
import soundfile as sf

from kdjax.data import (
    audiomnist,
    dcase_scenes,
    fsd50k,
    magnatagatune,
    openmic,
    sonyc_ust,
    urbansound8k,
)
from kdjax.data.audio import DatasetNotFoundError


def _wav(path, sr, n=64):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.full(n, 0.1, np.float32), sr)


def test_urbansound8k(tmp_path):
    root = tmp_path / "urbansound8k"
    lines = ["slice_file_name,fsID,start,end,salience,fold,classID,class"]
    for i, (fold, cid) in enumerate([(1, 3), (2, 0), (10, 9), (1, 6)]):
        name = f"{i}-{cid}-0-0.wav"
        lines.append(f"{name},{i},0,1,1,{fold},{cid},{urbansound8k.CLASS_NAMES[cid]}")
        _wav(root / "audio" / f"fold{fold}" / name, 44100)
    (root / "metadata").mkdir()
    (root / "metadata" / "UrbanSound8K.csv").write_text("\n".join(lines) + "\n")
    s = urbansound8k.source("fold1", data_dir=tmp_path)
    assert [int(r.labels.argmax()) for r in s.records] == [3, 6]
    assert len(urbansound8k.source("train_fold1", data_dir=tmp_path)) == 2
    assert urbansound8k.split_folds("validation_fold10") == (1,)
    assert len(urbansound8k.split_folds("fit_fold3")) == 8
    assert s[0]["audio"].shape == (64,)
    with pytest.raises(ValueError, match="unknown split"):
        urbansound8k.split_folds("fold11")
    (root / "audio" / "fold2" / "1-0-0-0.wav").unlink()
    with pytest.raises(DatasetNotFoundError, match="fold2/1-0-0-0.wav"):
        urbansound8k.source("all", data_dir=tmp_path)
    with pytest.raises(DatasetNotFoundError, match="UrbanSound8K.csv"):
        urbansound8k.source("all", data_dir=tmp_path / "nowhere")


def test_audiomnist(tmp_path):
    data = tmp_path / "audiomnist" / "data"
    for spk in (1, 48, 49, 60):
        for digit in (0, 7):
            _wav(data / f"{spk:02d}" / f"{digit}_{spk:02d}_0.wav", 48000)
    (data / "audioMNIST_meta.txt").write_text(json.dumps({"01": {"gender": "male"}, "60": {"gender": "female"}}))
    tr = audiomnist.source("train", data_dir=tmp_path)
    assert len(tr) == 4 and {r.meta["speaker"] for r in tr.records} == {1, 48}
    assert tr.records[0].meta["gender"] == "male"
    te = audiomnist.source("test", data_dir=tmp_path)
    assert [int(r.labels.argmax()) for r in te.records] == [0, 7]
    assert len(audiomnist.source("validation", data_dir=tmp_path)) == 2
    (data / "audioMNIST_meta.txt").write_text("{bad json")
    with pytest.raises(ValueError, match="audioMNIST_meta.txt"):
        audiomnist.source("train", data_dir=tmp_path)


def _sonyc(tmp_path):
    root = tmp_path / "sonyc_ust"
    cols = ["1-1_small-sounding-engine_presence", "1-2_large-sounding-engine_presence",
            "1-X_engine-of-uncertain-size_presence", "8-1_dog-barking-whining_presence",
            "1_engine_presence", "8_dog_presence"]
    head = "split,sensor_id,audio_filename,annotator_id," + ",".join(cols)
    rows = [
        # clip a (train): two crowd annotators disagree on dog; one says uncertain engine
        "train,0,a.wav,5,0,0,1,1,1,1",
        "train,0,a.wav,6,0,0,0,0,0,0",
        "train,0,a.wav,7,0,0,0,0,0,0",
        # clip b (validate): crowd says engine 1-1, verified (annotator 0) says 1-2 only
        "validate,1,b.wav,9,1,0,0,0,1,0",
        "validate,1,b.wav,0,0,1,0,0,1,0",
    ]
    root.mkdir()
    (root / "annotations.csv").write_text(head + "\n" + "\n".join(rows) + "\n")
    _wav(root / "train" / "a.wav", 44100)
    _wav(root / "validate" / "b.wav", 44100)
    return root


def test_sonyc_ust_labels_and_masks(tmp_path):
    _sonyc(tmp_path)
    c = sonyc_ust.source("all", data_dir=tmp_path)
    assert c.class_names == ["1_engine", "8_dog"] and c.multi_label
    np.testing.assert_array_equal(np.stack([r.labels for r in c.records]), [[1, 1], [1, 0]])
    cm = sonyc_ust.source("all", aggregate="majority", data_dir=tmp_path)
    np.testing.assert_array_equal(cm.records[0].labels, [0, 0])  # 1 of 3 annotators
    f = sonyc_ust.source("train", level="fine", data_dir=tmp_path)
    assert f.class_names == ["1-1_small-sounding-engine", "1-2_large-sounding-engine", "8-1_dog-barking-whining"]
    np.testing.assert_array_equal(f.records[0].labels, [0, 0, 1])
    np.testing.assert_array_equal(f.records[0].label_mask, [0, 0, 1])  # 1-X positive -> engine fines unknown
    v = sonyc_ust.source("validation", level="fine", data_dir=tmp_path)
    np.testing.assert_array_equal(v.records[0].labels, [0, 1, 0])  # verified annotator 0 wins
    np.testing.assert_array_equal(v.records[0].label_mask, [1, 1, 1])
    assert v.records[0].meta["verified"]
    with pytest.raises(ValueError, match="unknown split"):
        sonyc_ust.source("eval", data_dir=tmp_path)


def test_openmic_npz_and_csv(tmp_path):
    root = tmp_path / "openmic-2018"
    (root / "partitions").mkdir(parents=True)
    names = [f"inst{i:02d}" for i in range(20)]
    (root / "class-map.json").write_text(json.dumps({n: i for i, n in enumerate(names)}))
    keys = ["000123_0", "000456_3840", "111000_0"]
    y = np.zeros((3, 20), np.float32)
    m = np.zeros((3, 20), bool)
    y[0, :3], m[0, :3] = [0.9, 0.5, 0.1], True
    y[1, 5], m[1, 5] = 0.7, True
    y[2, 19], m[2, 19] = 0.2, True
    np.savez(root / "openmic-2018.npz", X=np.zeros((3, 10, 128)), Y_true=y, Y_mask=m, sample_key=np.array(keys))
    (root / "partitions" / "split01_train.csv").write_text("000123_0\n000456_3840\n")
    (root / "partitions" / "split01_test.csv").write_text("111000_0\n")
    for k in keys:
        _wav(root / "audio" / k[:3] / f"{k}.ogg".replace(".ogg", ".flac"), 44100)
    tr = openmic.source("train", data_dir=tmp_path)
    assert len(tr) == 2 and tr.num_classes == 20
    np.testing.assert_array_equal(tr.records[0].labels[:3], [1, 0, 0])
    np.testing.assert_array_equal(tr.records[0].label_mask[:4], [1, 0, 1, 0])  # 0.5 and unobserved masked
    soft = openmic.source("train", soft=True, data_dir=tmp_path)
    np.testing.assert_allclose(soft.records[0].labels[:3], [0.9, 0.5, 0.1])
    te = openmic.source("test", data_dir=tmp_path)
    assert te.records[0].meta["sample_key"] == "111000_0" and te.records[0].labels.sum() == 0
    from kdjax.data._helpers import stable_fraction

    n_val = sum(stable_fraction("openmic:" + k) < 10 for k in keys[:2])
    assert len(openmic.source("train_sub", data_dir=tmp_path)) == 2 - n_val
    # aggregated-labels CSV gives the same encoding
    (root / "openmic-2018.npz").unlink()
    (root / "openmic-2018-aggregated-labels.csv").write_text(
        "sample_key,instrument,relevance,num_responses\n000123_0,inst00,0.9,3\n000123_0,inst01,0.5,2\n"
        "000123_0,inst02,0.1,3\n000456_3840,inst05,0.7,3\n111000_0,inst19,0.2,3\n")
    tr2 = openmic.source("train", data_dir=tmp_path)
    for a, b in zip(tr.records, tr2.records):
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.label_mask, b.label_mask)
    (root / "openmic-2018-aggregated-labels.csv").unlink()
    with pytest.raises(DatasetNotFoundError, match="openmic-2018.npz"):
        openmic.source("train", data_dir=tmp_path)


def test_magnatagatune(tmp_path):
    root = tmp_path / "magnatagatune"
    tags = [f"t{i}" for i in range(4)]
    rows = [("1", "0/a.mp3", [1, 1, 0, 0]), ("2", "b/b.mp3", [1, 0, 0, 0]), ("3", "c/c.mp3", [1, 1, 1, 0]),
            ("4", "d/d.mp3", [0, 0, 0, 1]), ("5", "f/e.mp3", [1, 0, 0, 0])]
    lines = ["\t".join(["clip_id", *tags, "mp3_path"])]
    for cid, p, y in rows:
        lines.append("\t".join([cid, *map(str, y), p]))
        _wav(root / "mp3" / p.replace(".mp3", ".flac"), 16000)  # decoded copy, same stem
    root.mkdir(exist_ok=True)
    (root / "annotations_final.csv").write_text("\n".join(lines) + "\n")
    tr = magnatagatune.source("train", num_tags=2, data_dir=tmp_path)
    assert tr.class_names == ["t0", "t1"] and tr.multi_label
    np.testing.assert_array_equal(np.stack([r.labels for r in tr.records]), [[1, 1], [1, 0]])
    assert [r.meta["clip_id"] for r in magnatagatune.source("validation", num_tags=2, data_dir=tmp_path).records] == ["3"]
    te = magnatagatune.source("test", num_tags=2, data_dir=tmp_path)
    assert [r.meta["clip_id"] for r in te.records] == ["4", "5"]
    assert len(magnatagatune.source("test", num_tags=2, drop_untagged=True, data_dir=tmp_path)) == 1
    assert magnatagatune.source("all", num_tags=3, data_dir=tmp_path).class_names == ["t0", "t1", "t2"]


def test_dcase_scenes(tmp_path):
    root = tmp_path / "dcase_scenes"
    meta = ["filename\tscene_label\tidentifier\tsource_label"]
    files = [("audio/airport-a-1.wav", "airport", "a"), ("audio/park-b-1.wav", "park", "b"),
             ("audio/airport-c-1.wav", "airport", "c")]
    for fn, sc, ident in files:
        meta.append(f"{fn}\t{sc}\t{ident}\ta")
        _wav(root / fn, 48000)
    (root / "meta.csv").write_text("\n".join(meta) + "\n")
    (root / "evaluation_setup").mkdir()
    (root / "evaluation_setup" / "fold1_train.csv").write_text(
        "filename\tscene_label\naudio/airport-a-1.wav\tairport\naudio/park-b-1.wav\tpark\n")
    (root / "evaluation_setup" / "fold1_evaluate.csv").write_text(
        "filename\tscene_label\naudio/airport-c-1.wav\tairport\n")
    tr = dcase_scenes.source("train", data_dir=tmp_path)
    assert tr.class_names == ["airport", "park"]
    assert [int(r.labels.argmax()) for r in tr.records] == [0, 1]
    ev = dcase_scenes.source("validation", data_dir=tmp_path)
    assert len(ev) == 1 and ev.records[0].meta["identifier"] == "c"
    assert not {r.meta["identifier"] for r in tr.records} & {r.meta["identifier"] for r in ev.records}
    (root / "evaluation_setup" / "fold1_evaluate.csv").write_text("file\tlabel\n")
    with pytest.raises(ValueError, match="lacks column"):
        dcase_scenes.source("evaluate", data_dir=tmp_path)


def test_fsd50k_and_fsdkaggle2018(tmp_path):
    root = tmp_path / "fsd50k"
    gt = root / "FSD50K.ground_truth"
    gt.mkdir(parents=True)
    (gt / "vocabulary.csv").write_text("0,Bark,/m/05tny_\n1,Speech,/m/09x0r\n2,Music,/m/04rlf\n")
    (gt / "dev.csv").write_text('fname,labels,mids,split\n10,"Bark,Speech","/m/05tny_,/m/09x0r",train\n11,Music,/m/04rlf,val\n')
    (gt / "eval.csv").write_text('fname,labels,mids\n20,"Speech,Music","/m/09x0r,/m/04rlf"\n')
    for d, f in [("FSD50K.dev_audio", "10"), ("FSD50K.dev_audio", "11"), ("FSD50K.eval_audio", "20")]:
        _wav(root / d / f"{f}.wav", 44100)
    tr = fsd50k.source("train", data_dir=tmp_path)
    assert tr.class_names == ["Bark", "Speech", "Music"] and tr.multi_label
    np.testing.assert_array_equal(tr.records[0].labels, [1, 1, 0])
    np.testing.assert_array_equal(fsd50k.source("validation", data_dir=tmp_path).records[0].labels, [0, 0, 1])
    np.testing.assert_array_equal(fsd50k.source("test", data_dir=tmp_path).records[0].labels, [0, 1, 1])
    assert len(fsd50k.source("all", data_dir=tmp_path)) == 3
    (gt / "eval.csv").write_text('fname,labels,mids\n20,Cat,/m/x\n')
    with pytest.raises(ValueError, match="vocabulary"):
        fsd50k.source("test", data_dir=tmp_path)

    k = tmp_path / "fsdkaggle2018"
    (k / "FSDKaggle2018.meta").mkdir(parents=True)
    (k / "FSDKaggle2018.meta" / "train_post_competition.csv").write_text(
        "fname,label,manually_verified,freesound_id,license\na.wav,Bark,1,1,CC0\nb.wav,Cello,0,2,CC0\n")
    (k / "FSDKaggle2018.meta" / "test_post_competition_scoring_clips.csv").write_text(
        "fname,label,usage,freesound_id,license\nc.wav,Cello,Public,3,CC0\n")
    for d, f in [("FSDKaggle2018.audio_train", "a.wav"), ("FSDKaggle2018.audio_train", "b.wav"),
                 ("FSDKaggle2018.audio_test", "c.wav")]:
        _wav(k / d / f, 44100)
    s = fsd50k.source("train", corpus="fsdkaggle2018", data_dir=tmp_path)
    assert s.class_names == ["Bark", "Cello"] and not s.multi_label and len(s) == 2
    assert len(fsd50k.source("train", corpus="fsdkaggle2018", verified_only=True, data_dir=tmp_path)) == 1
    np.testing.assert_array_equal(fsd50k.source("test", corpus="fsdkaggle2018", data_dir=tmp_path).records[0].labels, [0, 1])
    with pytest.raises(DatasetNotFoundError, match="test_post_competition_scoring_clips.csv"):
        (k / "FSDKaggle2018.meta" / "test_post_competition_scoring_clips.csv").unlink()
        fsd50k.source("test", corpus="fsdkaggle2018", data_dir=tmp_path)
