"""FRAMI: data-free KD by feature-rich audio model inversion, with DeepInversion as baseline.

Paper: Kang, He, Wang, Peng, Qu, Xiao, "Feature-Rich Audio Model Inversion for Data-Free
Knowledge Distillation Towards General Sound Classification", ICASSP 2023, arXiv 2303.07643.
No public code. Builds on DeepInversion (Yin et al., CVPR 2020) and contrastive model
inversion (CMI, Fang et al., IJCAI 2021). What is known of it: /work/shared/PAPERS.md section 5.

What is reproduced (the method, on our data; not the paper's numbers)
  A teacher (log-mel front-end + network + mean/std statistics pooling + classifier) is
  trained on real data, then inverted into log-mel spectrograms `[B, T, F]` (dB); students
  learn from the synthetic spectrograms ONLY and are tested on the real test split.
  Stages (one command runs all; each alone with `:stage=<name>`):
    teacher    train on real data (cross-entropy), named front-end `frontends.mel`; by default
               `stats_pool_net` (TDNN frame layers -> mean+std statistics pooling -> segment
               layers -> classifier: the statistics are on its path to the logits);
               `teacher_model=temporal_cnn` is round 1's teacher (mean pooling to the logits,
               its `stats` computed beside the path)
    inv_di     DeepInversion: CE(teacher(x), sampled target) + a_bn * BN-statistics prior on
               every BatchNorm of the teacher (`teacher.t.bn`, `capture_bn=True`; first layer
               x `bn_first`) + a_tv * TV(x) + a_l2 * ||x||; Adam on x; random time jitter
    inv_frami  inv_di's objective + a_cont * feature-invariant contrastive loss (InfoNCE
               between the teacher features `teacher.t.feats.<cont_feat>` of two augmented
               views of each sample, `views=2`; negatives: the other samples and a memory
               bank of the last `bank` samples of earlier batches, `memory_bank`)
    di         student, KD only (Hinton T^2 KL), on inv_di's synthetic set   (the baseline)
    cont       student, KD only, on inv_frami's set          ("+ contrastive" arm)
    hidden     student, KD + a_hid * hidden-state reuse, on inv_di's set ("+ hidden" arm)
    frami      student, KD + a_hid * hidden-state reuse, on inv_frami's set (full FRAMI)
    real       student, KD only, on the REAL train split (upper bound; not data-free)
  Optional, run only when named (`stage=inv_adv+adv`): DeepInversion's adaptive variant (ADI)
    inv_adv    inv_di's objective - w_adv * JS(softmax(s / adv_t) || softmax(t / adv_t)) against
               the frozen `di` student of the same seed (`adversarial_js`; samples on which the
               student and teacher disagree), one round (not alternated with student training)
    adv        student, KD only, on inv_adv's set (the same size as di's; baseline di)
  Hidden-state reuse: `stats_pooling_hidden_loss` between the student's frames (before
  pooling) and the teacher's, and between their mean+std statistics (after pooling), via a
  learnable linear projection from the student's width to the teacher's
  (`kdjax/models/frame_projection.py`, a training-only module `deploy=False`: it is neither
  evaluated nor counted in the student's parameters). Every student arm has `baseline="di"`,
  so `summary.json` gives each arm's paired difference over DeepInversion (same seeds).
  Inversions repeat over `seeds` as the students do (`inv_repeat=true`, the default: student
  seed k learns from inversion seed k, so the paired intervals cover the randomness of the
  inversion too); `inv_repeat=false` inverts once (seed 0) for every student seed.
  Every inversion ends with an acceptance check (kdjax.train.invert): the teacher's accuracy
  on the targets the inversion aimed at, over the whole set, is in its result.json /
  summary.json (`teacher_accuracy_on_targets`, `accepted`); a set below `accept` (0.95; tiny 0)
  is logged as REJECTED and, with `on_reject=stop` (default), refused by every student stage
  that reads it (a clear error naming the set and the accuracy); `on_reject=warn` reports only.
  Students never train on real data; with `student_val=true` (default, round 2) each student
  is evaluated on a REAL validation split held out of all training (FSDD `validation`, takes
  5-9; SC12 `validation`; ESC-10 `validation_fold1` = fold 2, the teacher and `real` then
  train on `fit_fold1` = folds 3-5), once, at its last step (result.json
  `models.student.validation`, summary.json `validation` per run): it is for choosing settings
  (priors, student_mixup) on validation, never on test; the kept parameters are the last.
  With `student_val=false` (round 1) no real validation split is read (`eval_split=""`).

Unknown (config arguments, our choices documented; none is the paper's published value)
  Objective weights (w_ce, w_bn, bn_first, w_tv, w_l2, w_cont), contrastive temperature
  (cont_tau), bank size (bank), which feature is contrasted (cont_feat: embedding|stats),
  what "feature-invariant" augments (we use DeepInversion's random circular time shift of up
  to `jitter` frames, time flip if `flip=true`, and per example a shift of up to
  `freq_jitter` mel bins and a level offset U(-gain_db, gain_db) dB, drawn independently per
  view), the clamp of the inputs (`clip`, default -100..20 dB: the front-end's floor to a
  little above the loudest real frame), mixup of the synthetic spectrograms in the students'
  steps (`student_mixup`, Beta(0.4, 0.4)), Adam lr / steps of the inversion, init x ~ N(init_mean, init_std^2) dB (FSDD: the measured
  mean/std of the real log-mel, -68 / 25 dB -- an assumption that uses one pair of real-data
  statistics), the hidden-state loss form (hidden_metric: mse|cosine, frames_w, stats_w,
  linear projection), KD temperature and weights, architectures, mel parameters (FSDD:
  `logmel40_8k`; Speech Commands `logmel40_16k`; ESC-10 and the paper variant: `logmel_frami`'s
  64 mels, in dB), synthetic-set size
  (syn_batches x syn_batch), and all of the paper's numbers.

Results (v3 tables, per-seed values, paired intervals, probes, the real-data control, runtimes):
configs/results/frami/README.md. Claim (`c.claim`): FRAMI vs DeepInversion students, test accuracy.

Variants (`variant=`):
  paper  UrbanSound8K (`urbansound8k`, 10-fold CV; we run fold 1 only unless `folds` is set),
         ESC-50 (`esc50`, fold 1), AudioMNIST (`audiomnist`) -- `data=us8k|esc50|audiomnist`.
         NOT runnable here: the datasets are not in /work/shared/data and the sizes need a GPU.
         UrbanSound8K: give the files resampled to 16 kHz (the source does not resample).
         tests/test_config_variants.py runs it for 2 steps on miniature copies of the
         datasets' layouts.
  local  sized for a 2-core shared CPU (`data=fsdd|esc10|sc12`).
  tiny   a few steps and tiny models (tests/test_configs.py).

Run:
  python -m kdjax.main --config configs/frami.py:variant=local,data=fsdd --workdir workdirs/frami_fsdd
  python configs/results/frami/make_table.py --workdir workdirs/frami_fsdd --arg variant=local,data=fsdd   # the table
variant=tiny runs 3 stages by default (`stage=all`: all 8): tests/test_configs.py -k frami.

Arguments: variant, data, stage (default | all | stage names joined by "+", e.g. di+cont;
configs/common.py "Stage lists"), seeds, teacher_model
(stats_pool_net, default | temporal_cnn), syn_batches, syn_batch, inv_steps (local: 1000,
LOCAL_INV_STEPS; round 1: 250), inv_lr, inv_schedule (constant, default | cosine |
warmup_cosine: `invert.lr_schedule`), inv_warmup (100: warmup steps of warmup_cosine, at most a
tenth of the steps), inv_log_every (0: a fifth of the steps), accept (-1: the variant's 0.95,
tiny 0.0), on_reject (stop | warn), prior_scale (element, default: TV and L2 priors per input
element, weights w_tv, w_l2 in per-element units, defaults = round 1's sum-scale weights
0.03 and 1e-5 x sqrt(FSDD_ELEMENTS = 101 x 40) = 1.907 and 6.36e-4, the same objective on FSDD;
sum: round 1's sum scale, the term's weight is w_tv / sqrt(FSDD_ELEMENTS), i.e. 0.03 and 1e-5
by default), student_val (true), student_eval_every (0: the students' one validation at their last
step; k: every k steps, the best-by-validation parameters kept, convergence recorded), init_mean,
init_std, jitter, flip, w_ce, w_bn, bn_first, w_tv, w_l2, w_cont, cont_tau, cont_feat, bank,
kd_t, w_kd, w_hid, hidden_metric, frames_w, stats_w, student_steps, teacher_steps, clip (inversion
clamp "low:high" in the front-end's units, e.g. -100:20 dB; default none), freq_basis (0: free mel
bins; K: each inverted frame is K DCT (cepstral) coefficients, smooth along frequency), time_stride
(1; s: coefficients on every s-th frame, linearly interpolated) -- `spectrogram_parametrization`,
freq_jitter (0; k: inversion views shifted by up to k mel bins), gain_db (0; g: views offset by
U(-g, g) dB), student_mixup (0; alpha > 0: mixup of the synthetic spectrograms in the
synthetic-only students' steps, the teacher labelling the mixed inputs), inv_repeat (true: one
inversion per seed; false: one inversion, seed 0, for all student seeds), w_adv (1.0) and adv_t
(3.0): the weight and temperature of the adversarial term of inv_adv.

Raises (get_config): ValueError for an unknown variant/data pair, cont_feat, hidden_metric,
prior_scale, on_reject, teacher_model or stage name, or a malformed clip.
"""

from __future__ import annotations

import ml_collections

from configs import common

# TV / L2 prior weights: round 1 tuned them on FSDD at the sum scale (DeepInversion's norms):
# w_tv = 0.03, w_l2 = 1e-5 on log-mels of FSDD_ELEMENTS = 101 frames x 40 mels. The priors are
# now per input element (root mean square over the T x F elements, `per_element=True` of
# `total_variation` / `l2_prior`), which divides the sum-scale value by sqrt(T * F): the
# per-element weight with the same objective on FSDD is w_sum * sqrt(FSDD_ELEMENTS) (63.56x),
# and that weight transfers unchanged to ESC-10's 501 x 64 inputs (7.9x the elements).
FSDD_ELEMENTS = 101 * 40
W_TV_SUM, W_L2_SUM = 0.03, 1e-5
# Inversion steps per batch of variant=local (round 1: 250, constant lr); see the second-round
# pilot in configs/results/frami/README.md for the teacher's accuracy on its targets vs step.
LOCAL_INV_STEPS = 1000

STAGES = ("teacher", "inv_di", "inv_frami", "di", "cont", "hidden", "frami", "real")
# DeepInversion's adaptive (ADI) variant, run only when named (`stage=inv_adv+adv`): a second
# inversion that also maximises the teacher-student Jensen-Shannon divergence against the `di`
# student of the same seed, and a student trained on that set alone.
EXTRA_STAGES = ("inv_adv", "adv")
# variant -> its data sets (tests/test_config_variants.py builds every pair)
VARIANTS = {
    "paper": ("us8k", "esc50", "audiomnist"),
    "local": ("fsdd", "esc10", "sc12"),
    "tiny": ("fsdd", "esc10", "sc12"),
}

# Architectures (temporal CNNs: frames [B, T', D], stats [B, 2D] = mean+std pooling). The
# teacher and student have the same total time stride (16), so their frames align 1:1.
TEACHER_LOCAL = dict(
    stem_width=64, widths=(64, 96, 128), strides=(2, 2, 2), stem_stride=2, dropout=0.1
)
STUDENT_LOCAL = dict(stem_width=16, widths=(16, 24, 32), strides=(2, 2, 2), stem_stride=2)
TEACHER_PAPER = dict(
    stem_width=128, widths=(128, 160, 192, 256), strides=(2, 2, 2, 1), stem_stride=2, dropout=0.1
)
STUDENT_PAPER = dict(stem_width=32, widths=(32, 48, 64), strides=(2, 2, 2), stem_stride=2)
TEACHER_TINY = dict(stem_width=8, widths=(12, 16), strides=(2, 2), stem_stride=2)
STUDENT_TINY = dict(stem_width=8, widths=(8, 8), strides=(2, 2), stem_stride=2)
# The default teacher (round 2): `stats_pool_net`, the x-vector layout the paper's teachers have
# (TDNN frame layers at the front-end's frame rate -> mean+std statistics pooling -> segment
# layers -> classifier). feats: `frames [B, T, W]` (the last frame layer, BEFORE pooling),
# `stats [B, 2W]` = concat(mean_t, std_t) of `frames` (AFTER pooling, the input of the segment
# layers, so on the path to the logits), `embedding [B, E]` (the first segment layer).
TEACHER_SPN_LOCAL = dict(
    widths=(64, 64, 64, 64, 128),
    kernels=(5, 3, 3, 1, 1),
    dilations=(1, 2, 3, 1, 1),
    embed_dim=64,
    dropout=0.1,
)
TEACHER_SPN_TINY = dict(widths=(16, 16), kernels=(5, 3), dilations=(1, 2), embed_dim=16)
# teacher_model -> the tiny teacher's kw (tests/test_config_variants.py shrinks the paper
# variant's teacher with it)
TEACHER_TINY_BY_MODEL = {"temporal_cnn": TEACHER_TINY, "stats_pool_net": TEACHER_SPN_TINY}


def _paper_frontend(sample_rate: int) -> dict:
    """`logmel_frami` (25 ms / 10 ms, 64 mels) at the paper data's own rate, in dB, with the mel
    bands up to the Nyquist rate (as the 16 kHz preset's 8 kHz; e.g. 22.05 kHz for ESC-50)."""
    return common.preset("logmel_frami", sample_rate=sample_rate, fmax=sample_rate / 2, log="db")


def _data(a: ml_collections.ConfigDict) -> tuple[dict, dict]:
    """(data block, front-end) for the variant/data pair.

    Raises:
      ValueError: an unknown pair.
    """
    tiny = a.variant == "tiny"
    if a.variant in ("local", "tiny"):
        if a.data == "fsdd":  # 8 kHz, 1 s spoken digits: the AudioMNIST analogue
            d = common.data(
                "fsdd", clip_seconds=1.0, max_examples=64 if tiny else 0, allow_download=True
            )
            return d, common.preset("logmel40_8k")
        if a.data == "esc10":  # 16 kHz, 5 s; fold 1 of the official 5-fold CV
            # student_val (default): fold 2 (`validation_fold1`) is held out of every training
            # (teacher and `real` train on `fit_fold1`, folds 3-5) and read only for selection;
            # student_val=false: round 1's layout (train on folds 2-5, no validation split).
            d = common.data(
                "esc10",
                train_split="fit_fold1" if a.student_val else "train_fold1",
                eval_split="validation_fold1" if a.student_val else "",
                test_split="test_fold1",
                clip_seconds=5.0,
            )
            return d, common.preset("logmel_frami", log="db")  # dB: the inversion priors are in dB
        if (
            a.data == "sc12"
        ):  # Speech Commands 12 classes (the local copy: the official test set, split)
            d = common.data("speech_commands", clip_seconds=1.0)
            return d, common.preset("logmel40_16k")
    if a.variant == "paper":
        if a.data == "us8k":  # resampled to 16 kHz; <= 4 s excerpts
            d = common.data(
                "urbansound8k",
                train_split="train_fold1",
                eval_split="validation_fold1",
                test_split="test_fold1",
                clip_seconds=4.0,
                sample_rate=16000,
            )
            return d, common.preset("logmel_frami", log="db")
        if a.data == "esc50":
            d = common.data(
                "esc50",
                train_split="train_fold1",
                eval_split="validation_fold1",
                test_split="test_fold1",
                clip_seconds=5.0,
            )
            return d, _paper_frontend(44100)
        if a.data == "audiomnist":
            d = common.data("audiomnist", clip_seconds=1.0)
            return d, _paper_frontend(48000)
    raise ValueError(
        f"config arguments variant={a.variant!r}, data={a.data!r}: expected variant=local|tiny with "
        "data=fsdd|esc10|sc12, or variant=paper with data=us8k|esc50|audiomnist"
    )


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The staged FRAMI / DeepInversion config (see the module docstring for the arguments)."""
    a = common.parse_arg(
        arg,
        variant="local",
        data="fsdd",
        stage="default",
        seeds=3,
        teacher_model="stats_pool_net",
        syn_batches=0,
        syn_batch=0,
        inv_steps=0,
        inv_lr=0.5,
        inv_schedule="constant",
        inv_warmup=100,
        inv_log_every=0,
        accept=-1.0,
        on_reject="stop",
        init_mean=-68.0,
        init_std=25.0,
        jitter=3,
        flip=False,
        w_ce=1.0,
        w_bn=3e-3,
        bn_first=10.0,
        w_tv=W_TV_SUM * FSDD_ELEMENTS**0.5,
        w_l2=W_L2_SUM * FSDD_ELEMENTS**0.5,
        prior_scale="element",
        w_cont=1.0,
        cont_tau=0.1,
        cont_feat="embedding",
        bank=256,
        kd_t=4.0,
        w_kd=1.0,
        w_hid=1.0,
        hidden_metric="mse",
        frames_w=1.0,
        stats_w=1.0,
        student_steps=0,
        teacher_steps=0,
        clip="-100:20",
        freq_basis=0,
        time_stride=1,
        freq_jitter=2,
        gain_db=6.0,
        student_mixup=0.4,
        inv_repeat=True,
        w_adv=1.0,
        adv_t=3.0,
        student_val=True,
        student_eval_every=0,
    )
    if a.variant not in ("paper", "local", "tiny"):
        raise ValueError(f"config argument variant={a.variant!r}: expected paper, local or tiny")
    if a.cont_feat not in ("embedding", "stats"):
        raise ValueError(f"config argument cont_feat={a.cont_feat!r}: expected embedding or stats")
    if a.prior_scale not in ("element", "sum"):
        raise ValueError(f"config argument prior_scale={a.prior_scale!r}: expected element or sum")
    if a.on_reject not in ("stop", "warn"):
        raise ValueError(f"config argument on_reject={a.on_reject!r}: expected stop or warn")
    if a.hidden_metric not in ("mse", "cosine"):
        raise ValueError(
            f"config argument hidden_metric={a.hidden_metric!r}: expected mse or cosine"
        )
    clip = []  # clip="low:high" (front-end units, e.g. -100:20 dB): clamp the inputs after every update
    if a.clip and str(a.clip) != "none":
        try:
            clip = [float(v) for v in str(a.clip).split(":")]
        except ValueError:
            clip = []
        if len(clip) != 2 or clip[0] >= clip[1]:
            raise ValueError(
                f"config argument clip={a.clip!r}: expected low:high with low < high, e.g. -100:20"
            )
    tiny, paper = a.variant == "tiny", a.variant == "paper"
    data, fe = _data(a)
    t_kw = dict(TEACHER_TINY if tiny else TEACHER_PAPER if paper else TEACHER_LOCAL)
    s_kw = dict(STUDENT_TINY if tiny else STUDENT_PAPER if paper else STUDENT_LOCAL)
    t_model = a.teacher_model
    if t_model == "stats_pool_net":  # the model zoo's TDNN + statistics pooling (x-vector)
        t_kw = dict(TEACHER_SPN_TINY if tiny else TEACHER_SPN_LOCAL)
    elif t_model != "temporal_cnn":
        raise ValueError(
            f"config argument teacher_model={t_model!r}: expected temporal_cnn or stats_pool_net"
        )
    t_width = int(t_kw["widths"][-1])  # the teacher's frame width (the projection's output)
    # Sizes: (teacher steps, student steps, batch, synthetic batches, synthetic batch, inversion steps).
    sizes = dict(
        tiny=(2, 2, 8, 1, 8, 2),
        local=(600, 300, 32, 6, 40, LOCAL_INV_STEPS),
        paper=(20000, 10000, 64, 80, 128, 2000),
    )
    t_steps, s_steps, bsz, n_syn, syn_b, inv_steps = sizes[a.variant]
    t_steps, s_steps = a.teacher_steps or t_steps, a.student_steps or s_steps
    n_syn, syn_b, inv_steps = a.syn_batches or n_syn, a.syn_batch or syn_b, a.inv_steps or inv_steps
    accept = a.accept if a.accept >= 0 else (0.0 if tiny else 0.95)  # tiny: 2 steps cannot pass
    # TV / L2 priors: per input element (`per_element=True`, weights in per-element units), or
    # round 1's sum scale (prior_scale=sum): the sum-scale term is sqrt(n) times the per-element
    # one, so w_tv / sqrt(FSDD_ELEMENTS) at the sum scale is the same objective on FSDD.
    per_element = a.prior_scale == "element"
    w_tv, w_l2 = (a.w_tv, a.w_l2) if per_element else (
        a.w_tv / FSDD_ELEMENTS**0.5, a.w_l2 / FSDD_ELEMENTS**0.5)

    teacher_ref = dict(model=t_model, kw=t_kw, frontend="mel", checkpoint="teacher:teacher")
    frontends = {"mel": fe}

    def train_stage(
        steps: int, lr: float, *, synthetic: str = "", hidden: bool = False, teacher: bool = False
    ) -> ml_collections.ConfigDict:
        """The teacher (`teacher=True`, real data) or a student: KD from the frozen teacher on
        `synthetic`'s set (or the real train split), + hidden-state reuse when `hidden`."""
        sizes = dict(
            batch_size=bsz,
            num_steps=steps,
            lr=lr,
            warmup_steps=0 if tiny else 30,
            eval_every=2 if tiny else (200 if teacher else (a.student_eval_every or steps)),
            checkpoint_every=2 if tiny else steps,
            log_every=2 if tiny else 50,
        )
        if teacher:  # tiny: no validation pass (time): the last parameters are the teacher's
            return common.train_stage(
                data=dict(data, eval_split="") if tiny else data,
                models={"teacher": dict(model=t_model, kw=t_kw, frontend="mel")},
                losses={"ce": common.ce("teacher")},
                repeat=False,
                kind="train",
                frontends=frontends,
                **sizes,
            )
        # Students never train on real data (data-free); with student_val they are evaluated
        # on the real validation split (held out of all training) for the selection of
        # settings; one validation, at the last step, so the kept parameters are the last.
        d, mixup = dict(data, eval_split=data["eval_split"] if a.student_val else ""), 0.0
        if synthetic:
            kw = dict(root=f"{{stage:{synthetic}}}/synthetic")
            if (
                a.student_mixup > 0
            ):  # mixup of the synthetic spectrograms (the stored logits are not read)
                kw["extras"] = False
            d, mixup = dict(d, train_source=dict(name="synthetic", kw=kw)), float(a.student_mixup)
        models = {"student": dict(model="temporal_cnn", kw=s_kw, frontend="mel")}
        losses = {"kd": common.hinton_kd("student", "t", weight=a.w_kd, temperature=a.kd_t)}
        if hidden:
            models["proj"] = dict(
                model="frame_projection",
                kw=dict(width=t_width),
                input="student.feats.frames",
                deploy=False,
            )
            losses["hidden"] = dict(
                fn="stats_pooling_hidden_loss",
                weight=a.w_hid,
                inputs=["proj.feats.frames", "teacher.t.feats.frames"],
                kw=dict(metric=a.hidden_metric, frames_weight=a.frames_w, stats_weight=a.stats_w),
                kw_inputs={
                    "student_stats": "proj.feats.stats",
                    "teacher_stats": "teacher.t.feats.stats",
                },
            )
        return common.train_stage(
            data=d,
            models=models,
            losses=losses,
            teachers={"t": dict(teacher_ref)},
            baseline="" if synthetic == "inv_di" and not hidden else "di",
            kind="train",
            frontends=frontends,
            mixup_alpha=mixup,
            eval_model="student",
            **sizes,
        )  # eval_model: not the training-only `proj`

    def invert_stage(frami: bool, adversarial: bool = False) -> ml_collections.ConfigDict:
        """An inversion: DeepInversion's terms, + the contrastive term of two views (`frami`), +
        the adversarial term against the frozen `di` student of this seed (`adversarial`, ADI)."""
        teachers = {"t": dict(teacher_ref, capture_bn=True)}
        invert = dict(
            feature="mel",
            num_batches=n_syn,
            batch_size=syn_b,
            steps=inv_steps,
            lr=a.inv_lr,
            init_mean=a.init_mean,
            init_std=a.init_std,
            targets="balanced",
            jitter=a.jitter,
            flip=a.flip,
            views=1,
            log_every=a.inv_log_every or max(1, inv_steps // 5),
            lr_schedule=a.inv_schedule,
            warmup_steps=min(a.inv_warmup, inv_steps // 10),
            accept_accuracy=accept,
            on_reject=a.on_reject,
            accept_teacher="t",
            freq_basis=a.freq_basis,
            time_stride=a.time_stride,
            freq_jitter=a.freq_jitter,
            gain_db=a.gain_db,
        )
        if clip:
            invert["clip"] = clip
        losses = {
            "ce": dict(
                fn="softmax_xent", weight=a.w_ce, inputs=["teacher.t.logits", "batch.labels"]
            ),
            "bn": dict(
                fn="bn_statistics_loss",
                weight=a.w_bn,
                kw=dict(first_layer_weight=a.bn_first),
                inputs=["teacher.t.bn"],
            ),
            "tv": dict(
                fn="total_variation",
                weight=w_tv,
                kw=dict(per_element=per_element),
                inputs=["features.mel"],
            ),
            "l2": dict(
                fn="l2_prior", weight=w_l2, kw=dict(per_element=per_element), inputs=["features.mel"]
            ),
        }
        if (
            adversarial
        ):  # ADI: maximise JS(student || teacher) against the frozen `di` student of this seed
            teachers["s"] = dict(
                model="temporal_cnn", kw=s_kw, frontend="mel", checkpoint="di:student"
            )
            losses["adv"] = dict(
                fn="adversarial_js",
                weight=-a.w_adv,
                kw=dict(temperature=a.adv_t),
                inputs=["teacher.s.logits", "teacher.t.logits"],
            )
        if frami:
            feat = f"teacher.t.feats.{a.cont_feat}"
            invert["views"] = 2
            invert["memory_bank"] = dict(path=feat, size=a.bank)
            losses["cont"] = dict(
                fn="feature_invariant_contrastive",
                weight=a.w_cont,
                kw=dict(temperature=a.cont_tau),
                inputs=[feat, f"view2.{feat}"],
                kw_inputs={"memory_bank": "batch.memory_bank"},
            )
        return common.invert_stage(
            data=dict(data, eval_split="", test_split=""),
            frontends=frontends,
            teachers=teachers,
            invert=invert,
            losses=losses,
            repeat=a.inv_repeat,
        )

    s_lr = 3e-3
    c = ml_collections.ConfigDict()
    c.stages = {
        "teacher": train_stage(t_steps, 2e-3, teacher=True),
        "inv_di": invert_stage(False),
        "inv_frami": invert_stage(True),
        "di": train_stage(s_steps, s_lr, synthetic="inv_di"),
        "cont": train_stage(s_steps, s_lr, synthetic="inv_frami"),
        "hidden": train_stage(s_steps, s_lr, synthetic="inv_di", hidden=True),
        "frami": train_stage(s_steps, s_lr, synthetic="inv_frami", hidden=True),
        "real": train_stage(s_steps, s_lr),
        "inv_adv": invert_stage(False, adversarial=True),
        "adv": train_stage(s_steps, s_lr, synthetic="inv_adv"),
    }
    common.apply_budgets(c.stages, a)  # patience=, plateau=, ... (configs/common.py BUDGET_ARGS)
    # tiny (tests, < ~60 s on a loaded 2-core CPU, where every stage costs ~20 s of compilation):
    # the stages that exercise every feature (inversion with DeepInversion's terms + two views +
    # memory bank; a synthetic-only student with the training-only projection); `stage=all`
    # runs all eight.
    default = ["teacher", "inv_frami", "frami"] if tiny else list(STAGES)
    c.run = common.stage_run(a.stage, c.stages, {"default": default, "all": list(STAGES)})
    c.seeds = a.seeds
    c.claim = common.claim(
        c.stages,
        arm="frami",
        baseline="di",
        effect=0.02,
        direction="greater",
        # the Plan's Holm family (README "Plan (second round)"): the three arms against DI and
        # frami - cont (whether hidden-state reuse adds to the contrastive set)
        secondary=[("cont", "di"), ("hidden", "di"), ("adv", "di"), ("frami", "cont")],
        source="Kang et al. 2023 claim FRAMI beats the DFKD baseline (DeepInversion) on "
        "UrbanSound8K, ESC-50 and AudioMNIST, but their numbers are unknown to us (PAPERS.md "
        "section 5); 2 accuracy points is our stated value, about the realised half-width of "
        "the paired intervals of our 5-seed FSDD table",
    )
    return c
