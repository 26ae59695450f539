"""configs/iusp.py teacher budget arguments: `teacher_eval_every` sets the teacher's validation
and checkpoint interval (a long teacher run to a plateau can resume); unset, the round-1
teacher stage is unchanged (validation every third of its steps, one checkpoint at the end).
The local variant's defaults are the second round's (configs.iusp.ROUND2_LOCAL); arguments given
explicitly (here 0 = "the variant's rule") keep round 1's rules reachable."""

import pytest

from configs import iusp


def test_teacher_eval_every_sets_validation_and_checkpoint_interval():
    c = iusp.get_config("variant=local,data=esc10_mix,stage=teacher,teacher_steps=4000,"
                        "teacher_eval_every=100,patience=8")
    t = c.stages.teacher
    assert (t.num_steps, t.eval_every, t.checkpoint_every) == (4000, 100, 100)
    assert t.early_stopping.patience == 8
    # students keep their own interval (steps // 2 = 60 at the local default of 120 steps)
    c = iusp.get_config("variant=local,data=esc10_mix,teacher_eval_every=100,steps=120,eval_every=0")
    assert c.stages.iusp_small.eval_every == 60


def test_round_one_teacher_stage_and_the_round_two_default():
    t = iusp.get_config(f"variant=local,data=esc10_mix,{iusp.ROUND1_ARGS}").stages.teacher
    assert (t.num_steps, t.eval_every, t.checkpoint_every) == (360, 120, 360)
    t = iusp.get_config("variant=local,data=esc10_mix").stages.teacher
    assert (t.num_steps, t.eval_every, t.checkpoint_every, t.early_stopping.patience) == (
        4000, 100, 100, 8)


def test_negative_teacher_eval_every_names_the_argument():
    with pytest.raises(ValueError, match="teacher_eval_every=-1"):
        iusp.get_config("teacher_eval_every=-1")


def test_eval_every_sets_the_students_interval_only():
    c = iusp.get_config("variant=local,data=sc_mix,eval_every=100,steps=3000,teacher_steps=0,"
                        "teacher_eval_every=0")
    assert c.stages.iusp_small.eval_every == 100 and c.stages.bce_large.eval_every == 100
    assert c.stages.teacher.eval_every == 3000  # its own default: (3 x 3000 steps) // 3
    with pytest.raises(ValueError, match="eval_every=-2"):
        iusp.get_config("eval_every=-2")
