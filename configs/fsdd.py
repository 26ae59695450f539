"""The main job: teacher -> student baseline -> KD student on real spoken digits (FSDD).

Hinton et al., "Distilling the Knowledge in a Neural Network" (2015) on the
Free Spoken Digit Dataset (8 kHz, 10 classes, official split: takes 0-4 test;
takes 5-9 held out from train for validation/model selection; 10-49 train).

Stages (all in one command, each runnable alone with `:stage=<name>`):
  teacher  a TC-ResNet-style temporal CNN (~1.5 M params), cross-entropy
  student  a 46x smaller temporal CNN (33.5 k params), cross-entropy only (baseline), 400 steps,
           over `seeds` (5) seeds
  kd       the same student, (1 - alpha) CE + alpha T^2 KL to the frozen teacher, same seeds
The student's size and budget were chosen on the validation split so that KD has room to show
(plan, pilot and results: configs/results/fsdd/README.md); the main job ends with the verdict on
KD - student (kdjax.report, `claim` below).
Each model has its own jnp log-mel front-end computed on device in the step.
Waveform mixup (alpha 0.4) is applied in the step before the front-ends, so the
teacher and the student see the same mixed view ("consistent teaching", Beyer
et al. CVPR 2022); the baseline student trains on the same mixed batches.

Run (see README for measured numbers and runtime):
  python -m kdjax.main --config configs/fsdd.py --workdir workdirs/fsdd
  python -m kdjax.main --config configs/fsdd.py:stage=kd,seeds=1 --workdir workdirs/fsdd
Arguments: stage (stage names joined by `+`, e.g. `student+kd`, or `all`; configs/common.py
"Stage lists"), seeds=N, variant=default|tiny (tiny: a few steps for tests), alpha, temperature,
teacher=live|cached, views=V.

teacher=cached (offline KD, issue #22): a `cache` stage after the teacher stores the teacher's
logits once, on V (`views`, default 10) fixed crop/pad positions of every train clip (the
random crop of the live recipe, drawn once per clip; kdjax.train.cache `cache.views`) and on the
starts of the validation/test clips; the kd stage reads them (`teachers.teacher.cached`) instead
of running the teacher, its pipeline draws one of the V views per clip and epoch, and mixup mixes
the cached teacher probabilities at T with the audio's weights (kdjax.train.forward.mix; an
approximation of the live teacher on the mixed audio).
  python -m kdjax.main --config configs/fsdd.py:teacher=cached --workdir workdirs/fsdd_cached
"""

from __future__ import annotations

import ml_collections

from configs import common

TEACHER = dict(
    stem_width=96, widths=(96, 128, 160, 192), strides=(1, 2, 2, 2), stem_stride=2, dropout=0.1
)
STUDENT = dict(stem_width=16, widths=(16, 24, 32), strides=(2, 2, 2), stem_stride=2)
# variant=tiny (tests): a 10x+ smaller teacher than TEACHER, still > 10x the student.
TEACHER_TINY = dict(stem_width=64, widths=(64, 96, 128), strides=(1, 2, 2), stem_stride=2)
# variant -> its data sets ("": the recipe has no `data` argument; FSDD only)
VARIANTS = {"default": ("",), "tiny": ("",)}
# Arms: stage -> (trained model, steps, lr, Hinton KD from the frozen teacher, baseline stage).
ARMS = {
    "teacher": ("teacher", 1200, 2e-3, False, ""),
    # 400 student steps: chosen on validation (configs/results/fsdd/README.md, "Selection").
    "student": ("student", 400, 3e-3, False, ""),
    "kd": ("student", 400, 3e-3, True, "student"),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The staged FSDD config (module docstring: arguments and stages).

    Raises:
      ValueError: an unknown variant or stage name.
    """
    a = common.parse_arg(arg, stage="all", seeds=5, variant="default", alpha=0.9, temperature=4.0,
                         teacher="live", views=10)
    tiny = a.variant == "tiny"
    if a.variant not in VARIANTS:
        raise ValueError(f"config argument variant={a.variant!r}: expected 'default' or 'tiny'")
    if a.teacher not in ("live", "cached"):
        raise ValueError(f"config argument teacher={a.teacher!r}: expected 'live' or 'cached'")
    data = common.data(
        "fsdd", clip_seconds=1.0, max_examples=64 if tiny else 0, allow_download=True
    )
    fe = common.preset("logmel40_8k")
    kws = {"teacher": TEACHER_TINY if tiny else TEACHER, "student": STUDENT}
    frozen = dict(
        model="temporal_cnn",
        kw=kws["teacher"],
        frontend=fe,
        checkpoint="{parent}/../teacher",
        checkpoint_model="teacher",
    )

    def stage(
        model: str, steps: int, lr: float, kd: bool, baseline: str
    ) -> ml_collections.ConfigDict:
        losses = {"ce": common.ce(model, weight=1.0 - a.alpha if kd else 1.0)}
        if kd:
            losses["kd"] = common.hinton_kd(
                model, "teacher", weight=a.alpha, temperature=a.temperature
            )
        return common.train_stage(
            data=data, models={model: dict(model="temporal_cnn", kw=kws[model], frontend=fe)},
            losses=losses, teachers={"teacher": frozen} if kd else {}, repeat=model != "teacher",
            baseline=baseline, batch_size=8 if tiny else 32, num_steps=2 if tiny else steps, lr=lr,
            warmup_steps=0 if tiny else 50, eval_every=2 if tiny else 200,
            checkpoint_every=1 if tiny else 200, mixup_alpha=0.4,
        )  # fmt: skip

    stages = {name: stage(*arm) for name, arm in ARMS.items()}
    if a.teacher == "cached":  # offline KD (module docstring)
        views = "{stage:cache}/arrays/{split}/views.npy"
        cache = common.cache_stage(
            data=data, batch_size=8 if tiny else 64,
            teachers={"teacher": dict(frozen, checkpoint="teacher:teacher")},
            cache=dict(outputs={"logits": "teacher.teacher.logits"}, views=dict(num=a.views, seed=0)),
        )  # fmt: skip
        stages = {"teacher": stages["teacher"], "cache": cache, "student": stages["student"],
                  "kd": stages["kd"]}  # fmt: skip
        with stages["kd"].unlocked():
            stages["kd"].data.train_crop = "views"
            stages["kd"].data.views = views
            stages["kd"].teachers.teacher.cached = {"logits": "{stage:cache}/arrays/{split}/logits.npy"}
            stages["kd"].teachers.teacher.cached_mixup_temperature = a.temperature
    c = ml_collections.ConfigDict()
    c.stages = stages
    common.apply_budgets(c.stages, a)  # patience=, plateau=, ... (configs/common.py BUDGET_ARGS)
    c.run = common.stage_run(a.stage, stages, {"all": list(stages)})
    c.seeds = a.seeds
    c.claim = common.claim(
        stages,
        arm="kd",
        baseline="student",
        effect=0.01,
        direction="greater",
        source="configs/results/fsdd/README.md (plan): +1 point (3 of 300 test clips), the smallest "
        "gain a user would act on here; Hinton et al. 2015 give no FSDD number (their speech model "
        "gained +1.9 points of frame accuracy, Table 1)",
    )
    return c
