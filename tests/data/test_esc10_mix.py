"""ESC-10 mixtures built from the real clips."""

import numpy as np

from kdjax.data import esc10_mix, esc50


def test_mixtures(data_dir):
    s = esc10_mix.source("test_fold2", num_mixtures=40, seed=1, data_dir=data_dir)
    base = esc50.source("test_fold2", subset="esc10", data_dir=data_dir)
    assert len(s) == 40 and s.multi_label and s.num_classes == 10
    lab = np.stack([r.labels for r in s.records])
    k = lab.sum(1)
    assert set(k.tolist()) == {1.0, 2.0, 3.0}
    paths = {r.path for r in base.records}
    for r in s.records:
        comps = r.meta["components"]
        assert r.meta["fold"] == 2
        assert {base.records[j].path for j in comps} <= paths
        np.testing.assert_array_equal(r.labels, np.clip(sum(base.records[j].labels for j in comps), 0, 1))
    # deterministic recipe, and the audio is the gained sum
    again = esc10_mix.source("test_fold2", num_mixtures=40, seed=1, data_dir=data_dir)
    assert [r.meta for r in again.records] == [r.meta for r in s.records]
    i = int(np.argmax(k))
    m = s.records[i].meta
    ref = sum(g * base.load(j) for j, g in zip(m["components"], m["gains"]))
    ref = ref / max(1.0, np.abs(ref).max())
    np.testing.assert_allclose(s[i]["audio"], ref, atol=1e-6)
    assert s[i]["audio"].shape == (80000,)
    # train split mixes only within each of its folds
    tr = esc10_mix.source("train_fold2", num_mixtures=30, seed=0, data_dir=data_dir)
    trb = esc50.source("train_fold2", subset="esc10", data_dir=data_dir)
    for r in tr.records:
        assert r.meta["fold"] != 2
        assert {trb.records[j].meta["fold"] for j in r.meta["components"]} == {r.meta["fold"]}
