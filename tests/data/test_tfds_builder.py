"""TFDS/ArrayRecord copy of a ClipSource, built and read back without TensorFlow."""

import numpy as np
import pytest

from kdjax.data import fsdd, pipeline, tfds_builder
from kdjax.data.audio import DatasetNotFoundError


@pytest.fixture(scope="module")
def built(tmp_path_factory, data_dir):
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    d = tmp_path_factory.mktemp("tfds")
    tsrc = tfds_builder.tfds_source(
        "fsdd", "test", data_dir=d, audio_dtype="int16", raw_data_dir=data_dir
    )
    return d, tsrc, fsdd.source("test", data_dir=data_dir)


def test_records_equal_source(built):
    _, tsrc, src = built
    assert len(tsrc) == len(src) == 300
    assert (tsrc.sample_rate, tsrc.class_names, tsrc.num_classes, tsrc.multi_label) == (
        8000, src.class_names, 10, False
    )
    for i in [0, 1, 150, 299]:
        a, b = tsrc[i], src[i]
        assert set(a) == set(b) == {"audio", "labels", "label_mask", "index"}
        for k in a:
            assert a[k].dtype == b[k].dtype, k
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    np.testing.assert_array_equal(tsrc.label_ids(), src.label_ids())


def test_tfds_data_source_and_pipeline(built):
    import tensorflow_datasets as tfds

    d, tsrc, src = built
    # the plain tfds API reads the same files
    ds = tfds.data_source("kdjax_fsdd/test", data_dir=d, split="test")
    assert len(ds) == 300
    np.testing.assert_array_equal(ds[7]["audio"].astype(np.float32) / 32768, src[7]["audio"])
    it = iter(pipeline.train_dataset(tsrc, clip_samples=4000, batch_size=16, seed=0))
    b = next(it)
    assert b["audio"].shape == (16, 4000) and b["labels"].shape == (16, 10)
    eb = next(pipeline.eval_batches(tsrc, clip_samples=4000, batch_size=16))
    ref = next(pipeline.eval_batches(src, clip_samples=4000, batch_size=16))
    for k in ref:
        np.testing.assert_array_equal(eb[k], ref[k])


def test_not_built_and_lossy_int16(tmp_path, built):
    with pytest.raises(DatasetNotFoundError, match="not built"):
        tfds_builder.tfds_source("fsdd", "validation", data_dir=tmp_path, build_if_missing=False)

    class Fake:
        sample_rate, class_names, num_classes, multi_label, name = 8000, ["a"], 1, False, "fake"

        def __len__(self):
            return 1

        def __getitem__(self, i):
            return {"audio": np.array([0.1], np.float32), "labels": np.ones(1, np.float32),
                    "label_mask": np.ones(1, np.float32), "index": np.int32(0)}

    with pytest.raises(ValueError, match="16-bit"):
        tfds_builder.build(Fake(), dataset_name="fake", split="train", data_dir=tmp_path, audio_dtype="int16")
    out = tfds_builder.build(Fake(), dataset_name="fake", split="train", data_dir=tmp_path / "f")
    assert (out / "dataset_info.json").is_file()


def test_reserved_split_name_all(tmp_path, data_dir):
    s = tfds_builder.tfds_source("esc10_mix", "fold1", data_dir=tmp_path, raw_data_dir=data_dir,
                                 num_mixtures=3)
    assert s.multi_label and len(s) == 3 and s[0]["labels"].shape == (10,)
    assert tfds_builder.tfds_split_name("all") == "all_clips"


def test_config_name():
    assert tfds_builder.config_name("train_fold1", {"subset": "esc10"}) == "train_fold1-subset_esc10"
