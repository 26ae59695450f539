"""Temporal KD: a transformer teacher's attention rollout distilled into on-device students' frames.

Paper: Choi, Kersner, Morton, Chang (Hyperconnect), "Temporal Knowledge Distillation for On-device
Audio Classification", ICASSP 2022, arXiv 2110.14131. No public code (/work/shared/PAPERS.md
section 3: method and tables from the paper and the authors' blog post).

Method (known): the teacher's self-attention maps of every layer are aggregated by attention
rollout (Abnar & Zuidema 2020, `kdjax.losses.attention_rollout`); the row of the class token,
its own entry dropped (wav2vec 2.0, no class token: `rollout_row` below), renormalised, is the
teacher's distribution over time
(`kdjax.losses.rollout_frame_distribution`), linearly interpolated to the student's number of
frames. The student is unchanged plus a TRAINING-ONLY attention head on its temporal features
before pooling (`kdjax.models.attention_head`, a learned query scoring each frame, softmax over
time; `deploy=False`: it is trained, never evaluated and not in the student's parameter count).
Objective:

    L = s_task * CE(y, student(x)) + lambda * KL(a^t || softmax(head(frames)))
    (`kdjax.losses.temporal_attention_kd`, teacher target under stop_gradient)

Students: LSTM-P (`lstm_p`), TC-ResNet (`temporal_cnn`), CRNN (`crnn`), Att-RNN (`att_rnn`),
MHAtt-RNN (`mhatt_rnn`); lambda in {0, 0.1, 0.25, 0.5} (lambda = 0: the plain student, no head).

Own-attention arm (`arms=own`, issue #26): Att-RNN and MHAtt-RNN already attend over their
frames; the paper adds "a training-only attention module on [the] temporal features" (PAPERS.md),
and issue #26 reads that wording as allowing the KL to act on the students' own attention
instead, an arm of ours: stages `att_rnn_own_l<100 lambda>` /
`mhatt_rnn_own_l...` (lambda > 0, paired with `<student>_l000`) build no head and distil into the
student's own attention, which is deployed. Att-RNN: its single query's scores
(`feats.attention_scores`, as logits). MHAtt-RNN: the mean over heads of the heads' weights
(`feats.attention_weights`, a distribution over frames): the target then fixes where the heads
attend on average and leaves them free to differ, whereas a KL per head would pull every head
onto the same distribution and undo the multi-head design.

UNKNOWN in the paper, hence config arguments (defaults are ours, not the paper's): whether the
task loss is scaled by 1 - lambda (`task_scale=one`: s_task = 1; `one_minus`: 1 - lambda), the
KL direction (`direction=teacher_student`) and temperature (`temperature=1`), the head's form
(`head=query`: s_t = q . h_t / sqrt(D), the blog's "learnable query"; `dense`, or `additive`
with a tanh layer), the students' sizes and front-ends, every optimiser setting, and for
wav2vec 2.0 (no class token) what "the first/classification token" is. `rollout_row`:
`cls` (token 0's row without its own entry: our transformer's class token, the default for
local/tiny); `first` (token 0's row kept whole over all N tokens: wav2vec 2.0's tokens are all
frames, so its first token is its first frame; the paper's wording read literally, the default
for paper since issue #26, before which paper defaulted to `mean`; not allowed for local/tiny,
whose first token is the class token); `mean` (the mean of all query rows, wav2vec 2.0's
mean-pooling read-out). `head_fusion` (mean|max|min over heads before the rollout) applies to
both targets (before issue #26 the live target ignored it and always took the mean).

Teachers:
  variant=local/tiny  `transformer` (kdjax.models.transformer: 1-D patches of log-mel frames,
                      a class token, pre-LN) trained here by the `teacher` stage.
  variant=paper       wav2vec 2.0 base with a classification head (kdjax.models.wav2vec2 on
                      raw 16 kHz audio), fine-tuned here from a Hugging Face checkpoint given
                      as `w2v_checkpoint=<local dir>` (`facebook/wav2vec2-base`; it cannot be
                      downloaded on our machines: see README "Temporal KD").
  teacher=speech_embedding  (variant=local/tiny, target=cached; issue #26's stronger offline
                      teacher; default teacher=scratch, the transformer above) Google's speech
                      embedding (Lin et al. ICASSP 2020, pre-trained for keyword spotting; the
                      ONNX files of openWakeWord 0.4.0: `pip install --no-deps
                      openwakeword==0.4.0`, licence in kdjax/embeddings/speech_embedding.py)
                      gives a 96-d token every 80 ms (each over 0.78 s, the clip padded so that
                      token k is centred on sample 1280 k, i.e. on front-end frame 4 k at the
                      20 ms hop); stage `embed` caches the sequences `[K, 96]` (K = 26 at 2 s,
                      51 at 4 s); stage `teacher` trains a small class-token transformer
                      (`SE_TEACHER`, no front-end: `input="batch.embedding"`) on them to a
                      validation plateau (`early_stopping`, patience 5 validations of 100
                      steps or `patience=N`, `teacher_steps` the ceiling); stage `rollout` takes the class
                      token's rollout row over the K tokens (rollout_row=cls: the paper's
                      "first/classification token") and maps it onto the T = 1 + samples / hop
                      front-end frames by linear interpolation between the token centres
                      (`speech_embedding.tokens_to_frames`); the students' loss then
                      interpolates T to their own frames as for the scratch teacher.
Target (`target`): `cached` (default for local/tiny) computes the teacher's frame distribution
once per clip in a `cache` stage (`rollout`, stored by clip index, joined as `batch.rollout`:
the student steps then run no teacher forward, which is what makes 60 student runs per clip
length fit a 2-core CPU; clips are fixed-length, read from their start); `live` (default for
paper) runs the frozen teacher in every student step and rolls its attention out there (allows
random crops, e.g. FSD50K).

Stages: (`embed`, teacher=speech_embedding), `teacher`, `rollout` (target=cached), then `<student>_l<100 lambda>` (`lstm_p_l000`,
`lstm_p_l010`, ..., `mhatt_rnn_l050`) and `<att_rnn|mhatt_rnn>_own_l<100 lambda>` (lambda > 0;
in the default list only with `arms=own` or `arms=head+own`), each repeated over `seeds` (seed
k of every arm is paired) with `baseline = <student>_l000`, so `summary.json` holds
`paired_over_<student>_l000` (mean paired gain, 95% t interval).

Variants:
  paper  data=sc2|sc4|sc6|sc8 (noisy Speech Commands v2: the 1 s keyword at a random offset in
         2/4/6/8 s of the corpus's own background noise, `noisy_speech_commands` over the full
         `speech_commands_v2` archive and its official lists) or data=fsd50k (FSD50K, 200
         classes, multi-label, mAP; 10 s crops). NOT RUNNABLE HERE: neither the full corpora
         nor the wav2vec 2.0 weights are on our machines. Student sizes/optimiser: ours.
         FSD50K's 44.1 kHz files: the student's front-end is logmel40_16k's analysis at
         44.1 kHz; the wav2vec 2.0 teacher reads the raw audio and expects 16 kHz (the
         pipeline does not resample): give it a 16 kHz copy of FSD50K (UNTESTED here).
         tests/test_config_variants.py runs the lambda-0 students for 2 steps on miniature
         layouts (the teacher needs the weights).
  local  data=sc2|sc4: the same noisy construction over the Speech Commands v2 TEST set in
         ../shared/data (speaker-disjoint train/validation/test re-split by speaker hash,
         `speech_commands`), 12 classes, 40 log-mel bins at a 20 ms hop (the KWS recipe's
         40 mels; the hop halved for the 2-core CPU). 3 seeds.
  tiny   a few steps on a few clips (tests).

Results (tables, paired intervals, pictures, runtimes, logs): configs/results/temporal_kd/README.md.
Claim (`c.claim`): Att-RNN at the largest lambda vs lambda 0, test accuracy (paper: +1.79 points).

Arguments: variant=paper|local|tiny, data, students (a `+` list, default all five), lambdas (a
`+` list, default 0+0.1+0.25+0.5), stage (stage names joined by `+`, run in that order, or `all`;
overrides students and lambdas; configs/common.py "Stage lists"), seeds, steps, teacher_steps, lr,
teacher_lr, batch, task_scale, direction,
temperature, head, eval_every (the students' validation interval in steps; default 0: steps / 4
for local/paper, 2 for tiny; the teachers keep theirs),
arms=head|own|head+own (which KD arms the default list runs; default head),
target=cached|live, rollout_row=cls|first|mean, head_fusion=mean|max|min,
w2v_checkpoint, teacher=scratch|speech_embedding, and the budget arguments of every recipe
(configs/common.py BUDGET_ARGS: patience, min_delta, val_fraction, plateau, plateau_factor):
`patience=N` (N > 0) sets early stopping after N validations without improvement in EVERY
train stage; `patience=0` (default) leaves the students without it and gives the
speech-embedding teacher its own patience of 5.

Raises (get_config): ValueError for an unknown variant/data/student/head/arm/target/rollout_row/
teacher, a negative eval_every, rollout_row=first outside variant=paper, teacher=speech_embedding
with variant=paper or target=live, or a lambda outside [0, 1) with task_scale=one_minus.
"""

from __future__ import annotations

from typing import Any

import ml_collections

from configs import common

STUDENTS = ("lstm_p", "temporal_cnn", "crnn", "att_rnn", "mhatt_rnn")
LAMBDAS = (0.0, 0.1, 0.25, 0.5)
# rollout_row -> the teacher's target row (kdjax.losses.rollout_frame_distribution):
# cls = row 0 without its own entry; first = row 0 whole (N entries); mean = mean of all rows
ROLLOUT_ROWS = ("cls", "first", "mean")
HEADS = {
    "query": dict(mode="query"),
    "dense": dict(mode="dense"),
    "additive": dict(mode="dense", hidden=32),
}

# arms=own: the students whose own attention over frames is distilled (no head); the feats key
# the KD term reads and whether it holds logits (Att-RNN: its scores; MHAtt-RNN: the mean of its
# heads' weights, see the module docstring)
OWN_ATTENTION = {
    "att_rnn": ("student.feats.attention_scores", True),
    "mhatt_rnn": ("student.feats.attention_weights", False),
}
ARMS = ("head", "own")

# On-device KWS-sized students (kdjax.models.*): every one outputs `frames` [B, T, D] before its
# pooling, which the attention head reads.
STUDENT_KW: dict[str, dict[str, Any]] = {
    "lstm_p": dict(units=64, proj=32, num_layers=1, pooling="last"),
    "temporal_cnn": dict(stem_width=16, widths=(24, 32, 48), strides=(2, 2, 2), kernel=9),
    "crnn": dict(conv_widths=(32, 32), time_strides=(1, 2), freq_pools=(2, 2), rnn_units=32),
    "att_rnn": dict(rnn_units=32, rnn_layers=2, dense_units=(64, 32)),
    "mhatt_rnn": dict(heads=4, rnn_units=32, rnn_layers=2, dense_units=(64, 32)),
}
TINY_STUDENT_KW: dict[str, dict[str, Any]] = {
    "lstm_p": dict(units=8, proj=4),
    "temporal_cnn": dict(stem_width=4, widths=(4, 8), strides=(2, 2)),
    "crnn": dict(conv_widths=(4, 4), rnn_units=4),
    "att_rnn": dict(rnn_units=4, rnn_layers=1, dense_units=(8,)),
    "mhatt_rnn": dict(heads=2, rnn_units=4, rnn_layers=1, dense_units=(8,)),
}
LOCAL_TEACHER = dict(dim=128, depth=4, heads=4, patch=4, stride=4, dropout=0.1)  # 80 ms tokens
TINY_TEACHER = dict(dim=16, depth=2, heads=2, patch=2, stride=2)
# teacher=speech_embedding: a small class-token transformer on the cached 96-d embedding
# sequence (one token per 80 ms embedding, no front-end); max_tokens covers 4 s (51 + 1)
SE_TEACHER = dict(dim=64, depth=2, heads=4, patch=1, stride=1, dropout=0.1, max_tokens=64)
TINY_SE_TEACHER = dict(dim=16, depth=1, heads=2, patch=1, stride=1, max_tokens=64)
SE_EXTRACTOR = "kdjax.embeddings.speech_embedding:extract_batch"
SE_ROLLOUT = "kdjax.embeddings.speech_embedding:rollout_frames"
TEACHERS = ("scratch", "speech_embedding")
DATA_LOCAL = ("sc2", "sc4")
DATA_PAPER = ("sc2", "sc4", "sc6", "sc8", "fsd50k")
# variant -> its data sets (tests/test_config_variants.py builds every pair)
VARIANTS = {"paper": DATA_PAPER, "local": DATA_LOCAL, "tiny": DATA_LOCAL}


def lam_code(lam: float) -> str:
    """Stage-name suffix of a lambda: 0.25 -> "l025"."""
    return f"l{round(100 * lam):03d}"


def _data(a: ml_collections.ConfigDict) -> tuple[dict[str, Any], bool]:
    """(data block, multi_label) for a.data / a.variant."""
    tiny, paper = a.variant == "tiny", a.variant == "paper"
    if a.data == "fsd50k":
        d = common.data("fsd50k", eval_split="validation", test_split="test", clip_seconds=10.0)
        return d, True
    dur = int(a.data[2:])
    # variant=paper reads the full archive (<data_root>/speech_commands_v2, official lists);
    # local/tiny the official test set re-split by speaker (same source, see its docstring).
    d = common.data(
        "noisy_speech_commands", clip_seconds=float(dur), duration_s=dur, seed=0, cache=not paper
    )
    d["train_crop"] = "start"  # the clips are exactly `dur` s long: start = the whole clip
    if tiny:
        d["kw"]["max_examples"] = 24
    del paper
    return d, False


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    a = common.parse_arg(
        arg,
        variant="local",
        data="",
        students="",
        lambdas="",
        stage="",
        seeds=3,
        steps=0,
        teacher_steps=0,
        lr=0.0,
        teacher_lr=0.0,
        batch=0,
        task_scale="one",
        direction="teacher_student",
        temperature=1.0,
        head="query",
        arms="head",
        target="",
        rollout_row="",
        head_fusion="mean",
        w2v_checkpoint="",
        teacher="scratch",
        patience=0,
        eval_every=0,
    )
    if a.variant not in ("paper", "local", "tiny"):
        raise ValueError(f"config argument variant={a.variant!r}: expected paper, local or tiny")
    tiny, paper = a.variant == "tiny", a.variant == "paper"
    valid = DATA_PAPER if paper else DATA_LOCAL
    a.data = a.data or "sc2"
    if a.data not in valid:
        raise ValueError(
            f"config argument data={a.data!r}: expected one of {valid} for variant={a.variant}"
        )
    students = [s for s in (a.students or "+".join(STUDENTS)).split("+") if s]
    for s in students:
        if s not in STUDENTS:
            raise ValueError(f"config argument students: {s!r} is not one of {STUDENTS}")
    lambdas = [float(x) for x in a.lambdas.split("+")] if a.lambdas else list(LAMBDAS)
    arms = [x for x in a.arms.split("+") if x]
    if not arms or any(x not in ARMS for x in arms):
        raise ValueError(f"config argument arms={a.arms!r}: expected a `+` list of {ARMS}")
    if a.head not in HEADS:
        raise ValueError(f"config argument head={a.head!r}: expected one of {sorted(HEADS)}")
    if a.task_scale not in ("one", "one_minus"):
        raise ValueError(f"config argument task_scale={a.task_scale!r}: expected one or one_minus")
    if a.task_scale == "one_minus" and any(not 0 <= lam < 1 for lam in lambdas):
        raise ValueError(
            f"config argument lambdas={lambdas}: task_scale=one_minus needs 0 <= lambda < 1"
        )
    target = a.target or ("live" if paper else "cached")
    if target not in ("cached", "live"):
        raise ValueError(f"config argument target={a.target!r}: expected cached or live")
    rollout_row = a.rollout_row or ("first" if paper else "cls")
    if rollout_row not in ROLLOUT_ROWS:
        raise ValueError(
            f"config argument rollout_row={a.rollout_row!r}: expected one of {ROLLOUT_ROWS}"
        )
    if rollout_row == "first" and not paper:
        raise ValueError(
            f"config argument rollout_row=first with variant={a.variant}: the local transformer "
            "teacher's first token is its class token, not a frame (its row without its own "
            "entry is rollout_row=cls); `first` keeps the whole row, for wav2vec 2.0 (variant=paper)"
        )
    a.rollout_row = rollout_row
    if a.teacher not in TEACHERS:
        raise ValueError(f"config argument teacher={a.teacher!r}: expected one of {TEACHERS}")
    se = a.teacher == "speech_embedding"
    if se and (paper or target != "cached"):
        raise ValueError(
            "config argument teacher=speech_embedding: needs variant=local|tiny and "
            f"target=cached (got variant={a.variant}, target={target}); its rollout is mapped "
            "onto the front-end's frames once per clip in the rollout stage"
        )

    d, multi_label = _data(a)
    if paper and a.data == "fsd50k" and target == "cached":
        raise ValueError(
            "config argument target=cached with data=fsd50k: FSD50K trains on random "
            "10 s crops, which per-clip cached targets cannot follow; use target=live"
        )
    # FSD50K's files are 44.1 kHz: the same 40-mel analysis at that rate (Speech Commands: 16 kHz).
    sr = 44100 if a.data == "fsd50k" else 16000
    fe = (
        common.preset("logmel40_16k", sample_rate=sr)
        if paper
        else common.preset("logmel40_16k", hop_length=320)
    )
    student_kw = TINY_STUDENT_KW if tiny else STUDENT_KW

    if paper:
        if not a.w2v_checkpoint:
            # The config is still buildable (tests, inspection); training needs the weights.
            a.w2v_checkpoint = "<path to a local facebook/wav2vec2-base checkpoint>"
        teacher = dict(model="wav2vec2", kw={}, input="batch.audio", pretrained=a.w2v_checkpoint)
        cls_index = None if a.rollout_row == "mean" else 0
        steps, t_steps = a.steps or 30000, a.teacher_steps or 20000
        lr, t_lr, batch = a.lr or 1e-3, a.teacher_lr or 3e-5, a.batch or 64
        warm, every = 1000, 2000
    else:
        if se:  # a class-token transformer on the cached embedding sequence (stage `embed`)
            kw = TINY_SE_TEACHER if tiny else SE_TEACHER
            teacher = dict(model="transformer", kw=kw, input="batch.embedding")
        else:
            kw = TINY_TEACHER if tiny else LOCAL_TEACHER
            teacher = dict(model="transformer", kw=kw, frontend=fe)
        cls_index = None if a.rollout_row == "mean" else 0
        if tiny:
            steps, t_steps, lr, t_lr, batch, warm, every = 2, 2, 3e-3, 1e-3, 8, 0, 2
        else:
            # the speech-embedding teacher stops early: its step count is a ceiling
            steps, t_steps = a.steps or 300, a.teacher_steps or (4000 if se else 1000)
            lr, t_lr, batch = a.lr or 3e-3, a.teacher_lr or 1e-3, a.batch or 32
            warm, every = 40, max(steps // 4, 1)
    if a.eval_every < 0:
        raise ValueError(f"config argument eval_every={a.eval_every}: expected >= 0 (0: the default)")
    every = a.eval_every or every  # the students' validation interval (the teacher keeps its own)
    roll_kw = dict(cls_index=cls_index, head_fusion=a.head_fusion)
    if a.rollout_row == "first":  # row 0 kept whole: wav2vec 2.0's token 0 is a frame
        roll_kw["drop_query"] = False

    def train_stage(
        n_steps: int,
        lr_: float,
        models: dict[str, Any],
        losses: dict[str, Any],
        *,
        teachers: dict[str, Any] | None = None,
        repeat: bool = True,
        baseline: str = "",
        eval_every: int = 0,
        data: dict[str, Any] | None = None,
        **fields: Any,
    ) -> ml_collections.ConfigDict:
        ev = eval_every or every
        return common.train_stage(
            data=data or d,
            models=models,
            losses=losses,
            teachers=teachers,
            repeat=repeat,
            baseline=baseline,
            batch_size=batch,
            num_steps=n_steps,
            lr=lr_,
            warmup_steps=warm,
            eval_every=ev,
            checkpoint_every=n_steps if not tiny else 1,
            log_every=max(ev // 2, 1),
            grad_clip=1.0 if paper else 0.0,
            quiet=True,
            eval_metric="mean_average_precision" if multi_label else "accuracy",
            **fields,
        )

    frozen = dict(teacher, checkpoint="teacher:teacher", checkpoint_model="teacher")
    frozen.pop("pretrained", None)
    st: dict[str, ml_collections.ConfigDict] = {}
    t_data, t_fields = d, {}
    if se:
        # stage embed: the speech-embedding sequences [K, 96] of every clip, once; the teacher
        # and the rollout stage read them joined by clip index
        st["embed"] = common.cache_stage(
            data=d,
            batch_size=batch,
            cache=dict(extractor=SE_EXTRACTOR, outputs={"embedding": "extractor.embedding"}),
        )
        t_data = dict(d, join={"embedding": "{stage:embed}/arrays/{split}/embedding.npy"})
        t_fields = dict(early_stopping=dict(patience=a.patience or 5))  # to a validation plateau
    st["teacher"] = train_stage(
        t_steps,
        t_lr,
        {"teacher": teacher},
        {"task": common.task_loss("teacher", multi_label=multi_label)},
        repeat=False,
        eval_every=2 if tiny else (100 if se else max(t_steps // 5, 1)),
        data=t_data,
        **t_fields,
    )
    if se:
        # the class token's rollout row over the K tokens, mapped onto the T front-end frames
        # (token k centred on frame 1280 k / hop: linear interpolation, speech_embedding.
        # tokens_to_frames); the students' loss then interpolates T to their own frames
        hop = int(fe["hop_length"])
        n_frames = 1 + int(float(d["clip_seconds"]) * 16000) // hop
        st["rollout"] = common.cache_stage(
            data=t_data,
            batch_size=batch,
            teachers={"teacher": frozen},
            cache=dict(
                outputs={
                    "rollout": dict(
                        fn=SE_ROLLOUT,
                        kw=dict(roll_kw, num_frames=n_frames, frames_per_token=1280 / hop),
                        inputs=["teacher.teacher.feats.attention"],
                    )
                }
            ),
        )
        student_data = dict(d, join={"rollout": "{stage:rollout}/arrays/{split}/rollout.npy"})
    elif target == "cached":
        st["rollout"] = common.cache_stage(
            data=d,
            batch_size=batch,
            teachers={"teacher": frozen},
            cache=dict(
                outputs={
                    "rollout": dict(
                        fn="rollout_frame_distribution",
                        kw=roll_kw,
                        inputs=["teacher.teacher.feats.attention"],
                    )
                }
            ),
        )
        # the students read the teacher's frame distribution by clip index (no teacher forward)
        student_data = dict(d, join={"rollout": "{stage:rollout}/arrays/{split}/rollout.npy"})
    else:
        student_data = d

    names = (["embed"] if se else []) + ["teacher"] + (["rollout"] if target == "cached" else [])
    n_pre = len(names)
    # arms: `<student>_l<lambda>` (lambda 0: no KD; > 0: the attention head), and for the
    # attention RNNs `<student>_own_l<lambda>` (lambda > 0: their own attention, no head)
    arm_list = [("head", lam) for lam in lambdas] + [("own", lam) for lam in lambdas if lam > 0]
    for s in STUDENTS:
        for arm, lam in arm_list:
            if arm == "own" and s not in OWN_ATTENTION:
                continue
            name = f"{s}_{lam_code(lam)}" if arm == "head" else f"{s}_own_{lam_code(lam)}"
            models = {"student": dict(model=s, kw=student_kw[s], frontend=fe)}
            scale = 1.0 - lam if a.task_scale == "one_minus" else 1.0
            losses = {"task": common.task_loss("student", multi_label=multi_label, weight=scale)}
            teachers = {}
            if lam > 0:
                if arm == "head":
                    models["head"] = dict(
                        model="attention_head",
                        kw=HEADS[a.head],
                        input="student.feats.frames",
                        deploy=False,
                    )
                    src, is_logits = "head.logits", True
                else:
                    src, is_logits = OWN_ATTENTION[s]
                kd_kw = dict(
                    student_is_logits=is_logits, direction=a.direction, temperature=a.temperature
                )
                if target == "cached":
                    tgt = "batch.rollout"
                else:
                    teachers = {"teacher": frozen}
                    tgt = "teacher.teacher.feats.attention"
                    kd_kw.update(roll_kw)  # the same rollout row and head fusion as cached
                losses["tkd"] = dict(
                    fn="temporal_attention_kd", weight=lam, kw=kd_kw, inputs=[src, tgt]
                )
            st[name] = train_stage(
                steps,
                lr,
                models,
                losses,
                teachers=teachers,
                data=student_data,
                baseline="" if lam == 0 else f"{s}_{lam_code(0.0)}",
            )
            if s in students and (lam == 0 or arm in arms):
                names.append(name)
    c = ml_collections.ConfigDict()
    c.stages = st
    common.apply_budgets(c.stages, a)  # patience=, plateau=, ... (configs/common.py BUDGET_ARGS)
    # tiny (the config test): teacher, rollout, one student pair
    default = (
        names[:n_pre] + ["temporal_cnn_l000", "temporal_cnn_l050"]
        if tiny and not a.students
        else names
    )
    c.run = common.stage_run(a.stage or "default", st, {"default": default, "all": list(st)})
    c.seeds = 1 if tiny and a.seeds == 3 else a.seeds
    c.variant = a.variant
    c.runnable_here = not paper
    top = max(lambdas)
    if 0.0 in lambdas and top > 0:  # the claim compares lambda 0 with the largest lambda
        arm = lambda s: f"{s}_{lam_code(top)}"  # noqa: E731
        c.claim = common.claim(
            st,
            arm=arm("att_rnn"),
            baseline=f"att_rnn_{lam_code(0.0)}",
            effect=0.0179,
            direction="greater",
            secondary=[(arm(s), f"{s}_{lam_code(0.0)}") for s in STUDENTS if s != "att_rnn"],
            source="Choi et al. 2022 (blog tables, PAPERS.md section 3): noisy Speech Commands 2 s, "
            "Att-RNN lambda 0 89.88% -> best KD 91.67% (+1.79 points; REPRODUCTION.md's example); "
            "the paper's best lambda per model is not known here, so the largest lambda is the arm",
        )
    return c
