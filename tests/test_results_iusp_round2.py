"""configs/results/iusp/round2/make_table.py on a synthetic results tree: the primary IUSP - SP
interval, the ratio of mean gains, Holm (statsmodels) and the relational share equal hand
computations; an undefined ratio (SP no better than BCE) is inconclusive."""

import json

import numpy as np
import pytest

from configs.results.iusp.round2.make_table import ARMS, build


def _tree(root, scores, converged=True, data="sc_mix"):
    cfg = {"stages": {"sp_small": {"losses": {"sp": {"weight": 100.0}}},
                      "iusp_small": {"losses": {"iusp": {"weight": 10.0}}}}}
    (root / data).mkdir(parents=True)
    (root / data / "config.json").write_text(json.dumps(cfg))
    for arm in ARMS:
        for k, v in enumerate(scores[arm]):
            d = root / data / f"{arm}_small" / f"seed{k}"
            d.mkdir(parents=True)
            m = {"best_step": 1000, "converged": converged, "test": {"micro_auprc": v}}
            (d / "result.json").write_text(json.dumps({"models": {"student": m}}))
            line = {"step": 3000, "train/loss": 2.0}
            if arm in ("sp", "iusp"):
                line[f"train/loss/{arm}"] = 0.004 if arm == "sp" else 0.02
            (d / "metrics.jsonl").write_text(json.dumps(line) + "\n")


def test_numbers_equal_hand_computations(tmp_path):
    rng = np.random.default_rng(0)
    base = 0.5 + rng.normal(0, 0.01, 6)
    scores = {"bce": base, "kd": base + 0.01 + rng.normal(0, 0.002, 6),
              "sp": base + 0.02 + rng.normal(0, 0.002, 6), "iusp": base + 0.035 + rng.normal(0, 0.002, 6)}
    _tree(tmp_path, {k: list(v) for k, v in scores.items()})
    md, n = build("sc_mix", 0.0057, root=tmp_path)
    d = scores["iusp"] - scores["sp"]
    assert n["primary"]["mean"] == pytest.approx(d.mean(), abs=1e-12)
    assert n["ratio_over_bce"][0] == pytest.approx(
        (scores["iusp"] - scores["bce"]).mean() / (scores["sp"] - scores["bce"]).mean(), rel=1e-12)
    lo, hi = n["ratio_over_bce"][1:]
    assert lo < n["ratio_over_bce"][0] < hi
    from statsmodels.stats.multitest import multipletests

    ps = [n["secondary"][k]["p_value"] for k in ("sp - bce", "iusp - bce", "sp - kd", "iusp - kd")]
    assert [n["secondary"][k]["holm_p"] for k in ("sp - bce", "iusp - bce", "sp - kd", "iusp - kd")] == \
        pytest.approx(list(multipletests(ps, method="holm")[1]), abs=1e-12)
    assert n["shares"]["sp"][0] == pytest.approx(100.0 * 0.004 / 2.0)
    assert n["shares"]["iusp"][0] == pytest.approx(10.0 * 0.02 / 2.0)
    assert "**reproduced**" in md


def test_ratio_is_inconclusive_when_sp_does_not_beat_bce(tmp_path):
    base = [0.50, 0.51, 0.49, 0.52]
    scores = {"bce": base, "kd": base, "sp": [b - 0.001 for b in base], "iusp": [b + 0.01 for b in base]}
    _tree(tmp_path, scores, converged=False)
    md, n = build("sc_mix", 0.0057, root=tmp_path)
    assert n["ratio_verdict"] == "inconclusive" and "undefined" in md
    assert "under-trained" in md


def test_each_data_set_reads_only_its_own_folder(tmp_path):
    """esc10_mix (issue #25's second data set) is built from `root/esc10_mix` alone, even with an
    sc_mix tree beside it; its primary difference is the hand-computed mean of its own scores."""
    sc = {"bce": [0.5, 0.6, 0.7], "kd": [0.5, 0.6, 0.7], "sp": [0.5, 0.6, 0.7], "iusp": [0.9, 0.9, 0.9]}
    esc = {"bce": [0.40, 0.42, 0.41, 0.43], "kd": [0.41, 0.43, 0.40, 0.44],
           "sp": [0.45, 0.44, 0.47, 0.46], "iusp": [0.44, 0.46, 0.45, 0.49]}
    _tree(tmp_path, sc)
    _tree(tmp_path, esc, data="esc10_mix")
    md, n = build("esc10_mix", 0.0057, root=tmp_path)
    assert n["seeds"] == ["seed0", "seed1", "seed2", "seed3"] and n["data"] == "esc10_mix"
    assert n["primary"]["mean"] == pytest.approx(np.mean(np.subtract(esc["iusp"], esc["sp"])), abs=1e-12)
    assert md.startswith("### esc10_mix, second round")


def test_local_defaults_are_the_round2_settings_and_round1_stays_reachable():
    """configs/iusp.py variant=local without arguments = the round-2 drivers' table commands plus
    the round-2 teacher's arguments (teachers/run.sh); ROUND1_ARGS gives round 1 (120 steps,
    SP on the embedding, teacher live, no early stopping)."""
    from configs import iusp
    from configs.results.iusp.round2.run_sc_mix import ARMS, common

    stage = "stage=teacher+" + "+".join(ARMS)
    teacher = "teacher_steps=4000,teacher_eval_every=100"
    for data, steps, w_iusp in (("sc_mix", 6000, 10), ("esc10_mix", 3000, 100)):
        driver = f"{common(data, steps)},{stage},w_sp=10,w_iusp={w_iusp},{teacher}"
        assert iusp.get_config(f"variant=local,data={data},{stage}").to_dict() == \
            iusp.get_config(driver).to_dict(), data
    st = iusp.get_config(f"variant=local,data=sc_mix,{iusp.ROUND1_ARGS}").stages
    assert st.sp_small.num_steps == 120 and st.teacher.num_steps == 360
    assert st.sp_small.losses.sp.inputs[0] == "student.feats.embedding"
    assert not st.sp_small.early_stopping.patience
    r2 = iusp.get_config("variant=local,data=esc10_mix").stages
    assert r2.iusp_small.losses.iusp.weight == 100.0 and r2.sp_small.early_stopping.patience == 8
