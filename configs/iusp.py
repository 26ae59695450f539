"""IUSP: intra-utterance similarity-preserving KD for audio tagging, with batch SP as its baseline.

Paper: Chang, Kao, Sun, Wang, "Intra-Utterance Similarity Preserving Knowledge Distillation for
Audio Tagging", Interspeech 2020, arXiv:2009.01759 (no public code). SP: Tung & Mori,
"Similarity-Preserving Knowledge Distillation", ICCV 2019.

What the paper reports (the claim reproduced): on DCASE 2019 Task 5 (SONYC urban sound tagging,
micro-AUPRC), over students of several sizes, IUSP's gain over the baseline is 27.1% to 122.4%
larger than SP's gain, i.e. (IUSP gain) / (SP gain) in [1.271, 2.224].

Stages (one command runs all; each is a stage of `kdjax.train.stages`, runnable alone with
`stage=<name>`):
  teacher         a larger temporal CNN, BCE (`sigmoid_xent` on multi-hot labels, masked by
                  `batch.label_mask`), trained once
  bce_<size>      student of size small|medium|large, BCE only (baseline)
  kd_<size>       BCE + per-class Bernoulli KD (`kd_bernoulli_kl`, T = 2)
  sp_<size>       BCE + KD + batch SP (`similarity_preserving` of the students' and teacher's
                  pooled `embedding` [B, D] by default, `sp_feat=frames` flattens `[B, T, D]`)
  iusp_<size>     BCE + KD + IUSP (`intra_utterance_sp` on `frames` [B, T, D] of student and
                  teacher: per clip the [T, T] frame Gram, rows L2-normalised, / T^2)
Every student arm uses the same seeds (seed k of every arm is paired), `baseline = bce_<size>`,
so `summary.json` holds `paired_over_bce_<size>` (mean paired gain, 95% t interval).
Model selection: best validation micro-AUPRC (DCASE 2019 Task 5 definition,
`kdjax.train.metrics.micro_auprc` on sigmoid probabilities, see PLATFORM NOTE); train metric:
micro-F1 at p = 0.5 (the platform's multi-label train metric).

Reproduced vs unknown/assumed (PAPERS.md section 2):
  known     task, metric, SP vs IUSP, several student sizes, BCE task loss.
  third-party (an SP re-implementation on the same task, not IUSP; used for `variant=paper`):
            16 kHz, 25 ms / 10 ms log-mel 125-7500 Hz, 64 mels teacher / 20 mels student,
            KD T = 2, weights BCE 1.5, KD 1.5, SP 10, lr 1e-4, 50 epochs.
  UNKNOWN (exposed as arguments, defaults named here; never the paper's):
            IUSP weight (`w_iusp`, default = SP's 10); IUSP normalisation (`row_norm=l2`,
            `normalize=gram`: SP's paper form); IUSP layer (`iusp_layer=frames`, the last
            block output before pooling; `fmap<i>` for block i); teacher layer (`iusp_teacher_layer`,
            default the same key); time alignment of teacher to student frames (`align=
            interpolate`; also mean|repeat|truncate); SP layer (`sp_feat=embedding`); the model
            families and sizes (the paper's are not known here: temporal CNNs of three widths);
            whether KD is masked by label_mask (we do not mask KD: the teacher's soft targets
            exist for every class).

variant=paper: SONYC-UST (`sonyc_ust` source, data=sonyc_coarse [8 classes] | sonyc_fine [23 classes,
            incomplete "X" tags masked by label_mask]); the files are read at 44.1 kHz, so the
            front-ends keep the third-party 25 ms / 10 ms / 125-7500 Hz settings at 44.1 kHz
            (64 mels teacher, 20 mels student); batch 64, lr 1e-4, 50 epochs of the 2351 train
            clips; selection on `validate`, report on `test` (assumed). NOT RUNNABLE HERE: the
            data is not in ../shared/data (download: kdjax/data/sonyc_ust.py); model sizes are ours.
            tests/test_config_variants.py runs it for 2 steps on a miniature SONYC-UST layout.
variant=local: real multi-label sets from ../shared/data, sized for a 2-core shared CPU:
            data=esc10_mix (ESC-10 mixtures, fold 1 test, fold 2 validation, folds 3-5 train)
            or data=sc_mix (`speech_commands_mix`: 1-3 keywords in 3 s of real noise,
            speaker-disjoint). lr 3e-3 (cosine), short runs (`steps`); weights as third-party.
variant=tiny: 2 steps on a few clips (tests/test_configs.py -k iusp).

teacher=live|cached (default: cached for variant=local, live for paper and tiny; issue #22):
            `cached` adds a `cache` stage after `teacher` (kdjax.train.cache) that runs the frozen
            teacher once over every split and stores what the students' losses read from it
            (`logits`; `feats.<sp_feat>` for SP; `feats.<iusp_teacher_layer or iusp_layer>` for
            IUSP); the kd/sp/iusp stages read them (`teachers.teacher.cached`) on
            `data.train_crop="start"` instead of running the teacher in every step. In
            variant=local this is the same step: no mixup, the teacher in eval mode, and the
            mixtures are exactly `clip_seconds` long, so the live random crop is the whole clip
            (tests/train/test_iusp_cached.py: same batch, loss terms and gradients as live).
            In variant=paper (SONYC clips of other lengths) and tiny (2 s crops of the 3-5 s
            mixtures) cached means clip starts instead of random crops, not the same training.
            An explicit `stage=` list gets `cache` inserted before its first stage that reads it.
            Measured (shared 2-core CPU, load ~7, batch 16, median of 20 jitted train steps on
            the same batches; `jit_train_step` of the local stages): student step cached/live
            0.52 / 0.58 / 0.68 (esc10_mix: kd_small 8.4 / 16.2 ms, iusp_small, iusp_large) and
            0.59 / 0.59 / 0.60 (sc_mix); first step 1.0-1.9 s shorter; the cache stage 3.6 s
            (esc10_mix, 1280 clips, 21 MB) and 5.2 s (sc_mix, 2240 clips).

Model selection: DCASE 2019 Task 5 micro-AUPRC (`eval_metric="micro_auprc"`), computed by the
loop on sigmoid probabilities (the committed raw runs logged it as `micro_auprc_sigmoid`, the
same number, from before the loop did the sigmoid itself).

Results (tables, paired intervals, the IUSP/SP gain ratios, logs): configs/results/iusp/README.md.
Claim (`c.claim`): IUSP minus SP (same student, same seeds), test micro-AUPRC.
Commands of the committed round-1 results (each ~54 min on a 2-core CPU shared with other jobs,
load 4-15, both at once; made with the live teacher, before `teacher=cached` became the local
default, which computes the same steps):
  python -m kdjax.main --config configs/iusp.py:variant=local,data=esc10_mix,<ROUND1_ARGS> --workdir workdirs/iusp_esc10_mix
  python -m kdjax.main --config configs/iusp.py:variant=local,data=sc_mix,<ROUND1_ARGS> --workdir workdirs/iusp_sc_mix
(`ROUND1_ARGS` below: steps=120,teacher=live,... ; `variant=local` alone now gives the second
round's settings, `ROUND2_LOCAL`: run stage=teacher, then the students, 10 seeds).

Arguments: variant=paper|local|tiny, data, student=all|small|medium|large, arm=all|bce|kd|sp|iusp,
stage (stage names joined by `+`, e.g. teacher+iusp_small, or `all`; overrides student/arm;
configs/common.py "Stage lists"), seeds, steps, lr, batch, w_bce, w_kd,
w_sp, w_iusp, temperature, iusp_layer, iusp_teacher_layer, sp_feat, align, row_norm, normalize,
frame_mask (a batch key holding a `[B, T]` student-frame mask; "" = none: fixed-length clips),
teacher=live|cached (above), teacher_steps (the teacher's steps or ceiling; 0: 3 x steps),
teacher_eval_every (its validation and checkpoint interval; 0: a third of its steps),
eval_every (the students' validation interval; 0: the variant's, half the steps locally), and the
budget arguments of every recipe (patience=, plateau=, ...: configs/common.py BUDGET_ARGS).
"""

from __future__ import annotations

import ml_collections

from configs import common

SIZES = ("small", "medium", "large")
ARMS = ("bce", "kd", "sp", "iusp")
# variant -> its data sets (tests/test_config_variants.py builds every pair)
VARIANTS = {
    "paper": ("sonyc_coarse", "sonyc_fine"),
    "local": ("esc10_mix", "sc_mix"),
    "tiny": ("esc10_mix", "sc_mix"),
}

# Temporal CNNs (kdjax.models.temporal_cnn): total time stride 8 for every model, so the
# teacher's and students' `frames` have the same T (alignment is then the identity).
LOCAL_TEACHER = dict(
    stem_width=64, widths=(64, 96, 128), strides=(2, 2, 1), stem_stride=2, dropout=0.1
)
LOCAL_STUDENTS = {
    "small": dict(stem_width=8, widths=(8, 12, 16), strides=(2, 2, 1), stem_stride=2),
    "medium": dict(stem_width=16, widths=(16, 24, 32), strides=(2, 2, 1), stem_stride=2),
    "large": dict(stem_width=24, widths=(32, 48, 64), strides=(2, 2, 1), stem_stride=2),
}
# teacher=cached: the cache stage's arrays, read by the student stages (`teachers.teacher.cached`)
CACHE = "{stage:cache}/arrays/{split}"
TINY_TEACHER = dict(stem_width=16, widths=(16, 16), strides=(2, 2), stem_stride=2)
TINY_STUDENT = dict(stem_width=4, widths=(4, 8), strides=(2, 2), stem_stride=2)
PAPER_TEACHER = dict(
    stem_width=128, widths=(128, 192, 256, 384), strides=(2, 2, 2, 1), stem_stride=2, dropout=0.2
)
PAPER_STUDENTS = {
    "small": dict(stem_width=16, widths=(16, 32, 32), strides=(2, 2, 2), stem_stride=2),
    "medium": dict(stem_width=32, widths=(32, 64, 64), strides=(2, 2, 2), stem_stride=2),
    "large": dict(stem_width=64, widths=(64, 96, 128), strides=(2, 2, 2), stem_stride=2),
}


def _data(a: ml_collections.ConfigDict) -> tuple[dict, int]:
    """(data block, sample rate) for `a.data` / `a.variant`."""
    tiny = a.variant == "tiny"
    if a.data == "esc10_mix":
        n = (16, 8, 8) if tiny else (960, 160, 160)
        d = common.data(
            "esc10_mix",
            train_split="fit_fold1",
            eval_split="validation_fold1",
            test_split="test_fold1",
            clip_seconds=5.0,
            cache=True,
        )
        d["split_kw"] = dict(num_mixtures=n)
        return d, 16000
    if a.data == "sc_mix":
        d = common.data("speech_commands_mix", clip_seconds=3.0, duration_s=3, max_keywords=3)
        d["split_kw"] = dict(num_mixtures=(16, 8, 8) if tiny else (1600, 320, 295))
        return d, 16000
    if a.data in ("sonyc_coarse", "sonyc_fine"):
        # DCASE 2019 Task 5: train / validate (model selection); "test" = the v2 annotations'
        # evaluation split (which split the paper reports on is not stated: assumed).
        d = common.data(
            "sonyc_ust",
            train_split="train",
            eval_split="validate",
            test_split="test",
            clip_seconds=10.0,
            level=a.data.split("_")[1],
            aggregate="any",
        )
        return d, 44100
    raise ValueError(
        f"config argument data={a.data!r}: expected esc10_mix, sc_mix, sonyc_coarse or sonyc_fine"
    )


# variant=local defaults (arguments not given): the second round's settings (issue #25): teacher
# to a plateau (4000-step ceiling, validation every 100, patience 8), students with SP on the
# frames, validation every 100, patience 8, and per data set the ceiling and IUSP weight that
# produced the committed tables (sc_mix: the doubled ceiling; esc10_mix: w_iusp chosen on
# validation).
ROUND2_LOCAL = dict(teacher_steps=4000, teacher_eval_every=100, patience=8, eval_every=100,
                    sp_feat="frames")
ROUND2_LOCAL_DATA = {"sc_mix": dict(steps=6000, w_sp=10.0, w_iusp=10.0),
                     "esc10_mix": dict(steps=3000, w_sp=10.0, w_iusp=100.0)}
# Round 1's local settings (120 student steps, a 360-step teacher, SP on the pooled embedding,
# last parameters, the teacher live in every step): the committed round-1 runs' configs.
ROUND1_ARGS = ("steps=120,teacher=live,teacher_steps=360,teacher_eval_every=0,eval_every=0,"
               "patience=0,sp_feat=embedding,w_sp=10,w_iusp=10")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    a = common.parse_arg(
        arg,
        variant="paper",
        data="",
        student="all",
        arm="all",
        stage="",
        seeds=3,
        steps=0,
        lr=0.0,
        batch=0,
        w_bce=1.5,
        w_kd=1.5,
        w_sp=10.0,
        w_iusp=10.0,
        temperature=2.0,
        iusp_layer="frames",
        iusp_teacher_layer="",
        sp_feat="embedding",
        align="interpolate",
        row_norm="l2",
        normalize="gram",
        frame_mask="",
        teacher_steps=0,
        teacher_eval_every=0,
        eval_every=0,
        teacher="",
    )
    if a.variant not in ("paper", "local", "tiny"):
        raise ValueError(f"config argument variant={a.variant!r}: expected paper, local or tiny")
    if not a.data:
        a.data = "sonyc_coarse" if a.variant == "paper" else "esc10_mix"
    if a.student != "all" and a.student not in SIZES:
        raise ValueError(f"config argument student={a.student!r}: expected all or one of {SIZES}")
    if a.arm != "all" and a.arm not in ARMS:
        raise ValueError(f"config argument arm={a.arm!r}: expected all or one of {ARMS}")
    tiny, paper = a.variant == "tiny", a.variant == "paper"
    if a.variant == "local":
        # The second round's settings (configs/results/iusp/README.md, issue #25) where the
        # arguments are not given; `ROUND1_ARGS` gives round 1's.
        common.default_unless_given(a, arg, {**ROUND2_LOCAL, **ROUND2_LOCAL_DATA.get(a.data, {})})
    teacher_mode = a.teacher or ("cached" if a.variant == "local" else "live")
    if teacher_mode not in ("live", "cached"):
        raise ValueError(f"config argument teacher={a.teacher!r}: expected live or cached")
    d, sr = _data(a)
    counts = d.pop("split_kw", {}).get("num_mixtures")

    if paper:
        # 25 ms / 10 ms at the files' rate (round half to even: 1102 / 441 samples at 44.1 kHz).
        fe_t = common.preset(
            "logmel64_16k",
            sample_rate=sr,
            win_length=round(0.025 * sr),
            hop_length=round(0.010 * sr),
        )
        fe_s = dict(fe_t, n_mels=20)
        teacher_kw, students = PAPER_TEACHER, PAPER_STUDENTS
        lr, steps, batch = a.lr or 1e-4, a.steps or 50 * 2351 // 64, a.batch or 64
        t_steps, warm, every = a.teacher_steps or steps, 500, 500
    else:
        # 20 ms hop: half the frames of the DCASE 10 ms hop, for the 2-core CPU.
        fe_t = common.preset("logmel64_16k", hop_length=320)
        fe_s = (
            fe_t  # one front-end computed once; the paper's 20-mel student input is variant=paper
        )
        teacher_kw = TINY_TEACHER if tiny else LOCAL_TEACHER
        students = {s: TINY_STUDENT for s in SIZES} if tiny else LOCAL_STUDENTS
        lr, steps, batch = (
            a.lr or 3e-3,
            2 if tiny else (a.steps or 120),
            a.batch or (8 if tiny else 16),
        )
        t_steps = 2 if tiny else (a.teacher_steps or 3 * steps)
        warm, every = (0, 2) if tiny else (20, max(steps // 2, 1))

    def data_block() -> dict:
        out = dict(d)
        out["kw"] = dict(d["kw"])
        if counts is not None:  # train count through train_source, validation/test through kw
            out["kw"]["num_mixtures"] = counts[1]
            out["train_source"] = dict(name=d["name"], kw=dict(out["kw"], num_mixtures=counts[0]))
        if tiny:
            out["kw"]["max_examples"] = counts[1] if counts else 8
            out["clip_seconds"] = 2.0
        return out

    teacher = dict(
        model="temporal_cnn",
        kw=teacher_kw,
        frontend=fe_t,
        checkpoint="teacher:teacher",
        checkpoint_model="teacher",
    )

    def arm_losses(arm: str, name: str) -> dict:
        """Loss terms of an arm (bce | kd | sp | iusp) of model `name` (module docstring)."""
        losses = {
            "bce": common.task_loss(name, multi_label=True, weight=1.0 if arm == "bce" else a.w_bce)
        }
        if arm in ("kd", "sp", "iusp"):
            losses["kd"] = dict(
                fn="kd_bernoulli_kl",
                weight=a.w_kd,
                kw=dict(temperature=a.temperature),
                inputs=["student.logits", "teacher.teacher.logits"],
            )
        if arm == "sp":
            losses["sp"] = dict(
                fn="similarity_preserving",
                weight=a.w_sp,
                kw=dict(row_norm=a.row_norm, normalize=a.normalize),
                inputs=[f"student.feats.{a.sp_feat}", f"teacher.teacher.feats.{a.sp_feat}"],
                kw_inputs={"mask": "batch.mask"},
            )
        if arm == "iusp":
            t_layer = a.iusp_teacher_layer or a.iusp_layer
            losses["iusp"] = dict(
                fn="intra_utterance_sp",
                weight=a.w_iusp,
                kw=dict(row_norm=a.row_norm, normalize=a.normalize, align=a.align),
                inputs=[f"student.feats.{a.iusp_layer}", f"teacher.teacher.feats.{t_layer}"],
                kw_inputs={"frame_mask": f"batch.{a.frame_mask}"} if a.frame_mask else {},
            )
        return losses

    if a.teacher_eval_every < 0 or a.eval_every < 0:
        raise ValueError(f"config arguments teacher_eval_every={a.teacher_eval_every}, "
                         f"eval_every={a.eval_every}: expected >= 0")
    if a.eval_every and not tiny:  # the students' validation interval (0: the variant's default)
        every = a.eval_every
    # the teacher's validation interval (0: a third of its steps); set, it is also the
    # checkpoint interval, so a long teacher run (e.g. to a plateau with patience=) can resume
    t_every = a.teacher_eval_every or max(t_steps // 3, 1)

    def stage(
        model_kw, arm: str, *, is_teacher: bool = False, baseline: str = ""
    ) -> ml_collections.ConfigDict:
        n_steps = t_steps if is_teacher else steps
        name = "teacher" if is_teacher else "student"
        return common.train_stage(
            data=data_block(),
            models={
                name: dict(model="temporal_cnn", kw=model_kw, frontend=fe_t if is_teacher else fe_s)
            },
            losses=arm_losses(arm, name),
            teachers={"teacher": teacher} if arm != "bce" else {},
            repeat=not is_teacher,
            baseline=baseline,
            batch_size=batch,
            num_steps=n_steps,
            lr=lr,
            warmup_steps=warm,
            eval_every=t_every if is_teacher and not tiny else every,
            checkpoint_every=(t_every if is_teacher and a.teacher_eval_every else n_steps)
            if not tiny else 1,
            log_every=max(every // 2, 1),
            eval_metric="micro_auprc",
            quiet=True,
        )

    c = ml_collections.ConfigDict()
    st = {"teacher": stage(teacher_kw, "bce", is_teacher=True)}
    names = ["teacher"]
    if teacher_mode == "cached":  # offline KD (module docstring "teacher=cached")
        t_feats = sorted({a.sp_feat, a.iusp_teacher_layer or a.iusp_layer})
        st["cache"] = common.cache_stage(
            data=data_block(),
            batch_size=8 if tiny else 64,
            teachers={"teacher": teacher},
            cache=dict(
                outputs={"logits": "teacher.teacher.logits"}
                | {f: f"teacher.teacher.feats.{f}" for f in t_feats}
            ),
        )
        names.append("cache")
    for size in SIZES:
        for arm in ARMS:
            st[f"{arm}_{size}"] = stage(
                students[size], arm, baseline="" if arm == "bce" else f"bce_{size}"
            )
            if teacher_mode == "cached" and arm != "bce":  # the teacher outputs its losses read
                feats = {"sp": [a.sp_feat], "iusp": [a.iusp_teacher_layer or a.iusp_layer]}
                s = st[f"{arm}_{size}"]
                with s.unlocked():
                    s.data.train_crop = "start"  # = the whole clip (module docstring)
                    s.teachers.teacher.cached = {"logits": f"{CACHE}/logits.npy"}
                    if arm in feats:
                        s.teachers.teacher.cached.feats = {
                            f: f"{CACHE}/{f}.npy" for f in feats[arm]
                        }
            if (a.student in ("all", size)) and (a.arm in ("all", arm)):
                names.append(f"{arm}_{size}")
    c.stages = st
    common.apply_budgets(c.stages, a)  # patience=, plateau=, ... (configs/common.py BUDGET_ARGS)
    # tiny (the config test): the teacher (BCE) and the two relational arms (BCE+KD+SP / +IUSP)
    default = ["teacher", "sp_small", "iusp_small"] if tiny else names
    run = common.stage_run(a.stage or "default", st, {"default": default, "all": list(st)})
    if teacher_mode == "cached":  # the cache stage runs before the first stage that reads it
        run_list = run.split(",")
        readers = [
            i for i, n in enumerate(run_list) if "cached" in st[n].teachers.get("teacher", {})
        ]
        if readers and "cache" not in run_list[: readers[0]]:
            run_list.insert(readers[0], "cache")
        run = ",".join(run_list)
    c.run = run
    c.seeds = 1 if tiny and a.seeds == 3 else a.seeds
    c.variant = a.variant
    c.runnable_here = not paper
    c.claim = common.claim(
        st,
        arm="iusp_small",
        baseline="sp_small",
        effect=0.0057,
        direction="greater",
        secondary=[("iusp_medium", "sp_medium"), ("iusp_large", "sp_large")],
        source="Chang et al. 2020: IUSP's gain over the baseline is 27.1-122.4% larger than SP's "
        "(PAPERS.md section 2); with the third-party SP gain on DCASE 2019 Task 5 (small CNN: "
        "micro-AUPRC 0.772 vs BCE 0.751, +0.021), IUSP - SP >= 0.271 x 0.021 = 0.0057",
    )
    return c
