"""configs/results/temporal_kd/round2: the driver's config is the README Plan's (ceiling 2000,
validation every 100, early stopping patience 5, speech-embedding teacher, cached cls target),
the `eval_every` argument leaves every default unchanged, the lambda choice follows the
validation criterion, and the table builder's primary equals a hand computation (scipy,
statsmodels) on a small synthetic tree of result.json files."""


import json

import numpy as np
import pytest

from configs import temporal_kd
from configs.results.temporal_kd.round2 import run_sc2


def test_driver_arguments_are_the_plan():
    c = temporal_kd.get_config(run_sc2.base_arg("sc2", run_sc2.STEPS) + ",seeds=1,stage=att_rnn_l050")
    st = c.stages.att_rnn_l050
    assert (st.num_steps, st.eval_every, st.early_stopping.patience) == (2000, 100, 5)
    assert st.data.join.rollout.startswith("{stage:rollout}")
    assert st.losses.tkd.weight == 0.5 and st.losses.tkd.inputs[1] == "batch.rollout"
    assert c.stages.rollout.cache.outputs.rollout.kw.cls_index == 0  # rollout_row=cls
    assert "embedding" in c.stages.teacher.data.join  # the speech-embedding teacher
    # the own-attention arm at a chosen lambda exists and has no head
    own = c.stages.mhatt_rnn_own_l025
    assert "head" not in own.models and own.losses.tkd.inputs[0] == "student.feats.attention_weights"
    # eval_every=0 (default) keeps steps / 4; the teacher keeps its own interval
    d = temporal_kd.get_config("teacher=speech_embedding,steps=2000")
    assert d.stages.att_rnn_l050.eval_every == 500 and c.stages.teacher.eval_every == 100
    assert temporal_kd.get_config("").to_dict() == temporal_kd.get_config("eval_every=0").to_dict()
    with pytest.raises(ValueError, match="eval_every"):
        temporal_kd.get_config("eval_every=-1")


def test_lambda_choice_and_table_order():
    runs = {0.25: {"validation": 0.70}, 0.5: {"validation": 0.72}}
    assert run_sc2.choose(runs) == 0.5
    assert run_sc2.choose({0.25: {"validation": 0.7}, 0.5: {"validation": 0.7}}) == 0.25  # tie
    arms = run_sc2.table_arms({"att_rnn": 0.5, "mhatt_rnn": 0.25, "crnn": 0.25, "temporal_cnn": 0.5})
    assert arms[:4] == ["att_rnn_l000", "att_rnn_l050", "mhatt_rnn_l000", "mhatt_rnn_l025"]
    assert arms[-2:] == ["att_rnn_own_l050", "mhatt_rnn_own_l025"] and len(arms) == 10
    c = temporal_kd.get_config("teacher=speech_embedding")
    assert all(a in c.stages for a in arms)


def _write(root, stage, seed, acc, converged=True):
    d = root / "sc2" / stage / f"seed{seed}"
    d.mkdir(parents=True)
    r = {"last_step": 1500, "train_time_s": 10.0, "models": {"student": {
        "best_step": 1000, "converged": converged, "test": {"accuracy": acc},
        "validation": {"accuracy": acc}}}}
    (d / "result.json").write_text(json.dumps(r))


def test_table_primary_is_the_hand_computed_paired_interval_with_holm(tmp_path):
    """A synthetic tree: Att-RNN chosen 0.5, MHAtt-RNN 0.25; 4 / 3 paired seeds (MHAtt-RNN's
    lambda-0 seed 3 missing: unpaired), CRNN one seed only. The primary means / intervals equal
    scipy's paired t interval, the two primaries' Holm p-values statsmodels'; the CRNN pair has no
    interval; a missing selection file gives no table."""
    from scipy import stats
    from statsmodels.stats.multitest import multipletests

    from configs.results.temporal_kd.round2.make_table import build

    md, n = build("sc2", root=tmp_path)
    assert "Selection not finished" in md and "primary" not in n
    chosen = {"att_rnn": 0.5, "mhatt_rnn": 0.25, "crnn": 0.25, "temporal_cnn": 0.5}
    runs = {s: {"0.25": {"validation": 0.6, "best_step": 900, "last_step": 1400, "converged": True},
                "0.5": {"validation": 0.61, "best_step": 900, "last_step": 1400, "converged": True}}
            for s in chosen}
    (tmp_path / "selection_sc2.json").write_text(json.dumps(dict(
        seed=100, lambdas=[0.25, 0.5], runs=runs, chosen=chosen, table_steps=2000)))
    base_a, kd_a = [0.55, 0.60, 0.58, 0.52], [0.58, 0.61, 0.62, 0.53]
    base_m, kd_m = [0.57, 0.59, 0.60], [0.60, 0.64, 0.61, 0.70]
    for k, (b, x) in enumerate(zip(base_a, kd_a, strict=True)):
        _write(tmp_path, "att_rnn_l000", k, b)
        _write(tmp_path, "att_rnn_l050", k, x, converged=k != 0)
    for k, x in enumerate(kd_m):
        _write(tmp_path, "mhatt_rnn_l025", k, x)
        if k < len(base_m):
            _write(tmp_path, "mhatt_rnn_l000", k, base_m[k])
    _write(tmp_path, "crnn_l000", 0, 0.40)
    _write(tmp_path, "crnn_l025", 0, 0.43)
    md, n = build("sc2", root=tmp_path)
    ps = []
    for s, b, x, eff in (("att_rnn", base_a, kd_a, 0.0179), ("mhatt_rnn", base_m, kd_m[:3], 0.02)):
        d = np.asarray(x) - np.asarray(b)
        q = n["primary"][s]["stats"]
        assert q["n"] == len(d) and q["mean"] == pytest.approx(d.mean(), abs=1e-12)
        lo, hi = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
        # kdjax.train.stats.t975 is the 3-decimal table value
        assert (q["ci95_low"], q["ci95_high"]) == pytest.approx((lo, hi), abs=2e-4)
        assert q["p_value"] == pytest.approx(stats.ttest_rel(x, b).pvalue, rel=1e-6)
        assert n["primary"][s]["effect"] == eff
        ps.append(q["p_value"])
    want = multipletests(ps, method="holm")[1]
    assert [n["primary"][s]["holm_p"] for s in ("att_rnn", "mhatt_rnn")] == pytest.approx(list(want))
    assert n["primary"]["att_rnn"]["converged"] == 7 and n["primary"]["att_rnn"]["runs"] == 8
    assert n["secondary"]["crnn"]["stats"] is None and "+3.00 (1 seed)" in md
    assert n["finished_runs"] == 4 + 4 + 3 + 4 + 2 and n["planned_runs"] == 50
    # every verdict here is inconclusive (intervals include 0), with the seeds that would decide
    assert all(n["primary"][s]["verdict"] == "inconclusive" for s in ("att_rnn", "mhatt_rnn"))


def test_extension_rule_takes_inconclusive_primaries_with_at_most_ten_seeds_to_decide():
    from configs.results.temporal_kd.round2.run_sc2 import extension

    row = lambda v, r: dict(verdict=v, runs_to_decide=r)  # noqa: E731
    assert extension({"att_rnn": row("inconclusive", 8), "mhatt_rnn": row("inconclusive", 10)}) == [
        "att_rnn", "mhatt_rnn"]
    assert extension({"att_rnn": row("inconclusive", 11), "mhatt_rnn": row("reproduced", None)}) == []
    assert extension({"att_rnn": row(None, None), "mhatt_rnn": row("inconclusive", 3)}) == ["mhatt_rnn"]


def test_each_clip_length_has_its_own_pre_stage_workdir(tmp_path, monkeypatch):
    """sc4 must not read sc2's finished embed / teacher / rollout (2 s clips, 25 tokens): with
    sc2's pre-stages done under WORK/base, the sc4 driver still runs its own, in WORK/sc4_base."""
    assert run_sc2.base_dir(tmp_path, "sc2") == tmp_path / "base"
    assert run_sc2.base_dir(tmp_path, "sc4") == tmp_path / "sc4_base"
    for s in run_sc2.PRE:  # sc2's pre-stages finished
        (tmp_path / "base" / s).mkdir(parents=True)
        (tmp_path / "base" / s / "result.json").write_text("{}")
    calls = []

    class Stop(Exception):
        pass

    def fake_run(log_path, cmd, stop_at=None):
        calls.append(cmd)
        raise Stop

    monkeypatch.setattr(run_sc2.round2, "run", fake_run)
    monkeypatch.setattr(run_sc2, "HERE", tmp_path / "results")
    with pytest.raises(Stop):
        run_sc2.main(str(tmp_path), data="sc4")
    assert "stage=embed+teacher+rollout" in calls[0][3] and "data=sc4" in calls[0][3]
    assert calls[0][-1] == f"--workdir={tmp_path / 'sc4_base'}"
