"""kdjax.report's picture hooks (kdjax.report.pictures): what they draw equals what the workdir
holds, recomputed here independently (NumPy interpolation of the cached rollout rows, the
synthetic shards read with np.load), and a workdir without the needed files gets one line.

The Temporal KD arm is trained for 2 steps (tiny) on real noisy Speech Commands clips (tiny config)
against a rollout target written here (random rows), so no teacher is trained; the FRAMI
shards are written here (no inversion)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from kdjax import report
from kdjax.report import pictures

pytest.importorskip("matplotlib")
ARM = "temporal_cnn_l050"
N_TOKENS = 23  # the fake teacher's frame tokens (the real tiny teacher has 50)


@pytest.fixture(scope="module")
def tkd(tmp_path_factory, data_dir):
    """A workdir with one trained Temporal KD arm (2 steps) and a hand-written rollout cache."""
    from configs import temporal_kd
    from kdjax.train import stages
    from kdjax.train.setup import data_source

    wd = tmp_path_factory.mktemp("tkd")
    cfg = temporal_kd.get_config("variant=tiny")
    with cfg.unlocked():
        cfg.run = ARM
    d = cfg.stages[ARM].data
    rng = np.random.default_rng(0)
    for split in (d.train_split, d.eval_split, d.test_split):
        n = len(data_source(d, split))
        os.makedirs(wd / "rollout" / "arrays" / split)
        np.save(
            wd / "rollout" / "arrays" / split / "rollout.npy",
            rng.dirichlet(np.ones(N_TOKENS), n).astype(np.float32),
        )
    stages.run_stages(cfg, str(wd))
    return str(wd), json.loads(cfg.to_json_best_effort())


def _interp(row: np.ndarray, t: int) -> np.ndarray:
    """Linear interpolation with half-pixel centres (torch align_corners=False), renormalised."""
    n = len(row)
    x = np.clip((np.arange(t) + 0.5) * n / t - 0.5, 0, n - 1)
    out = np.interp(x, np.arange(n), row / row.sum())
    return out / out.sum()


def test_attention_rollout_draws_the_cached_target_and_the_head(tkd):
    wd, config = tkd
    d = pictures.attention_rollout_data(wd, config, ARM, clips=3)
    rows = np.load(os.path.join(wd, "rollout", "arrays", "test", "rollout.npy"))
    k, t = d["weights"].shape
    assert k == 3 and d["target"].shape == (3, t) and t < N_TOKENS * 4
    expected = np.stack([_interp(rows[i].astype(np.float64), t) for i in d["clips"]])
    np.testing.assert_allclose(d["target"], expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(d["weights"].sum(-1), 1.0, rtol=1e-5)  # softmax weights
    assert not np.allclose(d["weights"], d["target"])
    assert all(not name.startswith("_") for name in d["truth"])  # keyword clips only
    assert d["mel"].shape[0] == 3 and d["seconds"] == pytest.approx(2.0)
    assert all(0 <= a < b <= 2.0 for a, b in d["keyword"])  # noisy SC: the keyword's place

    fig = pictures.attention_figure(d, "title")
    axes = fig.axes
    for j in range(3):
        np.testing.assert_array_equal(axes[j].images[0].get_array(), d["mel"][j].T)
        target_line, head_line = axes[3 + j].lines[:2]
        np.testing.assert_allclose(target_line.get_ydata(), d["target"][j])
        np.testing.assert_allclose(head_line.get_ydata(), d["weights"][j])
        np.testing.assert_allclose(target_line.get_xdata(), (np.arange(t) + 0.5) * 2.0 / t)


def test_report_of_a_temporal_kd_workdir_shows_the_hook(tkd, tmp_path):
    from PIL import Image

    wd, config = tkd
    assert pictures.default_specs(config) == [{"kind": "attention_rollout"}]
    rep = report.write_report(wd, str(tmp_path / "out"), config=config)
    png = tmp_path / "out" / "figures" / f"attention_{ARM}.png"
    assert (
        f"![Teacher_rollout_vs_the_KD_student_s_head_{ARM}](figures/attention_{ARM}.png)"
        in rep["markdown"]
    )
    w, h = Image.open(png).size  # 4 clips of 3.2 x 5 inches at 110 dpi, tight box
    assert abs(w - 4 * 3.2 * 110) < 0.1 * 4 * 3.2 * 110 and abs(h - 5 * 110) < 0.1 * 5 * 110
    assert rep["picture_notes"] == []
    # the same config on a folder without the arm's checkpoint: one line says why
    empty = tmp_path / "empty"
    (empty / ARM / "seed0").mkdir(parents=True)
    pics, notes = pictures.draw(None, str(empty), config, str(tmp_path / "f"))
    assert pics == {} and notes == [
        f"Picture `attention_rollout` not drawn: no checkpoint {empty}/{ARM}/seed0/ckpt."
    ]
    _, notes = pictures.draw(
        [{"kind": "attention_rollout", "arms": "nope*"}], wd, config, str(tmp_path / "f")
    )
    assert notes == [
        "Picture `attention_rollout` not drawn: "
        "no stage of run='temporal_cnn_l050' matches arms='nope*'."
    ]


def _write_shards(root, x, y, classes):
    os.makedirs(root)
    labels = np.eye(len(classes), dtype=np.float32)[y]
    half = len(x) // 2
    np.savez(
        os.path.join(root, "shard_0.npz"), **{"features/mel": x[:half], "labels": labels[:half]}
    )
    np.savez(
        os.path.join(root, "shard_1.npz"), **{"features/mel": x[half:], "labels": labels[half:]}
    )
    with open(os.path.join(root, "meta.json"), "w") as f:
        json.dump({"sample_rate": 8000, "class_names": classes, "feature_key": "mel"}, f)
    with open(os.path.join(os.path.dirname(root), "result.json"), "w") as f:
        json.dump({"kind": "invert", "summary": {"num_samples": len(x)}}, f)


def test_inverted_mels_grid_shows_each_class_first_sample(tmp_path, monkeypatch):
    from PIL import Image

    rng = np.random.default_rng(1)
    classes = ["zero", "one", "two"]
    wd = tmp_path / "frami"
    sets = {
        "inv_di": (rng.normal(-40, 10, (6, 7, 5)), np.array([2, 0, 2, 1, 0, 1])),
        "inv_frami": (rng.normal(-40, 10, (4, 7, 5)), np.array([1, 1, 0, 0])),
    }  # no "two"
    _write_shards(
        str(wd / "inv_di" / "synthetic"),
        sets["inv_di"][0].astype(np.float32),
        sets["inv_di"][1],
        classes,
    )
    _write_shards(
        str(wd / "inv_frami" / "seed0" / "synthetic"),
        sets["inv_frami"][0].astype(np.float32),
        sets["inv_frami"][1],
        classes,
    )
    config = {
        "run": "inv_di,inv_frami",
        "stages": {"inv_di": {"kind": "invert"}, "inv_frami": {"kind": "invert"}},
    }
    assert pictures.default_specs(config) == [{"kind": "inverted_mels"}]
    figs = []
    real = pictures.mel_grid_figure
    monkeypatch.setattr(
        pictures, "mel_grid_figure", lambda *a, **k: figs.append(real(*a, **k)) or figs[-1]
    )
    rep = report.write_report(str(wd), str(tmp_path / "out"), config=config)
    assert (
        "![Inverted_log_mel_spectrograms_per_class_inv_di_inv_frami](figures/inverted_mels.png)"
        in rep["markdown"]
    )
    (fig,) = figs
    cells = np.array(fig.axes[:6]).reshape(2, 3)
    for r, name in enumerate(("inv_di", "inv_frami")):
        x, y = sets[name]
        for k in range(3):
            hit = np.flatnonzero(y == k)
            imgs = cells[r, k].images
            if len(hit):
                np.testing.assert_allclose(imgs[0].get_array(), x[hit[0]].T.astype(np.float32))
            else:
                assert not imgs  # a class the set has no sample of: an empty cell
        assert cells[r, 0].get_ylabel() == name
    assert [cells[0, k].get_title() for k in range(3)] == classes
    w, h = Image.open(tmp_path / "out" / "figures" / "inverted_mels.png").size
    assert w > h > 100  # 3 columns of 1.6 in beside a colour bar, 2 rows of 1.7 in
    # a summary.json (no run folders): one line instead of the picture
    _, notes = pictures.draw(None, str(tmp_path / "x_summary.json"), config, str(tmp_path / "f"))
    assert notes == [
        f"Picture `inverted_mels` not drawn: {tmp_path / 'x_summary.json'} is not a workdir "
        "with inversion shards."
    ]


def test_bad_picture_specs_are_named(tmp_path):
    config = {"run": "a", "stages": {"a": {}}}
    assert pictures.default_specs(config) == []
    with pytest.raises(ValueError, match=r"report_pictures\[0\].kind='nope'"):
        pictures.draw([{"kind": "nope"}], str(tmp_path), config, str(tmp_path))
    with pytest.raises(ValueError, match=r"report_pictures\[1\] \(inverted_mels\).*colour"):
        pictures.draw(
            [{"kind": "inverted_mels"}, {"kind": "inverted_mels", "colour": 1}],
            str(tmp_path),
            config,
            str(tmp_path),
        )
    assert pictures.draw([], str(tmp_path), config, str(tmp_path)) == ({}, [])


def test_a_failing_picture_is_a_note_not_a_lost_report(tmp_path, monkeypatch):
    def broken(workdir, config, fig_dir, *, n=1):
        raise RuntimeError(f"boom {n}")

    monkeypatch.setitem(pictures.KINDS, "broken", broken)
    assert pictures.draw([{"kind": "broken", "n": 2}], str(tmp_path), {}, str(tmp_path)) == (
        {},
        ["Picture `broken` not drawn: it failed (RuntimeError: boom 2)."],
    )
