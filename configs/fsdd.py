"""The main job: teacher -> student baseline -> KD student on real spoken digits (FSDD).

Hinton et al., "Distilling the Knowledge in a Neural Network" (2015) on the
Free Spoken Digit Dataset (8 kHz, 10 classes, official split: takes 0-4 test;
takes 5-9 held out from train for validation/model selection; 10-49 train).

Stages (all in one command, each runnable alone with `:stage=<name>`):
  teacher  a TC-ResNet-style temporal CNN (~1.5 M params), cross-entropy
  student  a 10x+ smaller temporal CNN, cross-entropy only (baseline), over `seeds` seeds
  kd       the same student, (1 - alpha) CE + alpha T^2 KL to the frozen teacher, same seeds
Each model has its own jnp log-mel front-end computed on device in the step.
Waveform mixup (alpha 0.4) is applied in the step before the front-ends, so the
teacher and the student see the same mixed view ("consistent teaching", Beyer
et al. CVPR 2022); the baseline student trains on the same mixed batches.

Run (see README for measured numbers and runtime):
  python -m kdjax.main --config configs/fsdd.py --workdir workdirs/fsdd
  python -m kdjax.main --config configs/fsdd.py:stage=kd,seeds=1 --workdir workdirs/fsdd
Arguments: stage=all|teacher|student|kd, seeds=N, variant=default|tiny (tiny: a few
steps for tests), alpha, temperature.
"""

from __future__ import annotations

import ml_collections

from configs import common

TEACHER = dict(stem_width=96, widths=(96, 128, 160, 192), strides=(1, 2, 2, 2), stem_stride=2, dropout=0.1)
STUDENT = dict(stem_width=16, widths=(16, 24, 32), strides=(2, 2, 2), stem_stride=2)
# variant=tiny (tests): a 10x+ smaller teacher than TEACHER, still > 10x the student.
TEACHER_TINY = dict(stem_width=64, widths=(64, 96, 128), strides=(1, 2, 2), stem_stride=2)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    a = common.parse_arg(arg, stage="all", seeds=3, variant="default", alpha=0.9, temperature=4.0)
    tiny = a.variant == "tiny"
    if a.variant not in ("default", "tiny"):
        raise ValueError(f"config argument variant={a.variant!r}: expected 'default' or 'tiny'")
    data = common.data("fsdd", clip_seconds=1.0, max_examples=64 if tiny else 0, allow_download=True)
    fe_teacher = common.frontend("logmel40_8k")
    teacher_kw = TEACHER_TINY if tiny else TEACHER
    fe_student = common.frontend("logmel40_8k")

    def stage(model_kw, *, steps, lr, teacher=False, kd=False):
        c = common.train_config(
            batch_size=8 if tiny else 32, num_steps=2 if tiny else steps, lr=lr, warmup_steps=0 if tiny else 50,
            eval_every=2 if tiny else 200, checkpoint_every=1 if tiny else 200,
        )
        c.data = data
        c.mixup_alpha = 0.4
        name = "teacher" if teacher else "student"
        c.models = {name: dict(model="temporal_cnn", kw=model_kw, frontend=fe_student if not teacher else fe_teacher)}
        c.teachers = {}
        c.losses = {"ce": common.ce(name, weight=1.0)}
        if kd:
            c.teachers = {"teacher": dict(model="temporal_cnn", kw=teacher_kw, frontend=fe_teacher,
                                          checkpoint="{parent}/../teacher", checkpoint_model="teacher")}
            c.losses = {"ce": common.ce(name, weight=1.0 - a.alpha),
                        "kd": common.hinton_kd(name, "teacher", weight=a.alpha, temperature=a.temperature)}
        c.repeat = not teacher
        c.baseline = "student" if kd else ""
        return c

    c = ml_collections.ConfigDict()
    c.stages = {
        "teacher": stage(teacher_kw, steps=1200, lr=2e-3, teacher=True),
        "student": stage(STUDENT, steps=800, lr=3e-3),
        "kd": stage(STUDENT, steps=800, lr=3e-3, kd=True),
    }
    c.run = "teacher,student,kd" if a.stage == "all" else a.stage
    c.seeds = a.seeds
    return c
