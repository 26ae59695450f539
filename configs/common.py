"""Shared pieces of the recipe configs: argument parsing, stage lists, datasets, front-ends,
optimiser, losses, and the stage builders (`train_stage`, `cache_stage`, `invert_stage`) that
every recipe's tables of arms are built from.

A recipe (configs/<recipe>.py) is then: tables of architectures and arms, one `get_config(arg)`
that validates its arguments and calls these builders, and a `claim` (see `claim`) naming the
comparison its results table tests.

Stage lists: every recipe takes `stage=` as stage names joined by `+` (`,` separates config
arguments, so it cannot separate stages), e.g. `configs/iusp.py:stage=teacher+iusp_small`,
plus the recipe's named groups (`all`, `default`, ...). `stage_run` parses and checks it and
returns the staged config's `run` field, whose separator is `,` (read by
`kdjax.train.stage_list.stage_runs`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import ml_collections

# PRESETS: the named front-ends; preset(name, sample_rate=None, **overrides): a named preset
# rescaled to the data's rate (window, hop, n_fft, fmax), then a recipe's own overrides (every
# recipe builds its front-ends with it).
from kdjax.frontends import PRESETS as FRONTENDS  # noqa: F401
from kdjax.frontends import preset  # noqa: F401
from kdjax.train.convergence import EARLY_STOPPING_OFF, PLATEAU_OFF

# Convergence budgets (kdjax.train.convergence), config arguments of every recipe; applied to
# every train stage by `apply_budgets`:
#   patience=N       early stopping after N validations without improvement (0: off)
#   min_delta=x      the smallest improvement that counts (metric units; needs patience)
#   val_fraction=x   stratified part of train held out when a stage has no validation split
#   plateau=N        optax.contrib.reduce_on_plateau with patience N validations (0: off)
#   plateau_factor=x its learning-rate factor (needs plateau)
# A recipe that defines one of these names itself keeps its own default (e.g. EAsT's patience=0
# means the paper's patience).
BUDGET_ARGS = dict(patience=0, min_delta=0.0, val_fraction=0.1, plateau=0, plateau_factor=0.5)


def parse_arg(arg: str | None, **defaults: Any) -> ml_collections.ConfigDict:
    """Parses big_vision-style `key=value,key2=value2` config arguments onto typed defaults.

    The convergence-budget arguments `BUDGET_ARGS` are added to every recipe's defaults (a
    recipe's own default of the same name wins); `apply_budgets` writes them into its stages.

    Raises:
      ValueError: a key that is not among the defaults (names it and lists the valid ones),
        or a value that does not parse as the default's type.
    """
    defaults = {**BUDGET_ARGS, **defaults}
    out = dict(defaults)
    for item in (arg or "").split(","):
        if not item:
            continue
        key, eq, value = item.partition("=")
        if key not in defaults and not eq:
            raise ValueError(
                f"config argument {key!r} has no '=' (arguments are key=value joined by ','; "
                f"a list of stages is joined by '+', e.g. stage=a+b)"
            )
        if key not in defaults:
            raise ValueError(f"config argument {key!r} unknown; valid: {sorted(defaults)}")
        d = defaults[key]
        try:
            if isinstance(d, bool):
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(value)
                out[key] = value.lower() in ("true", "1")
            else:
                out[key] = type(d)(value) if d is not None else value
        except ValueError:
            raise ValueError(
                f"config argument {key}={value!r}: expected {type(d).__name__}"
            ) from None
    return ml_collections.ConfigDict(out)


def default_unless_given(a: ml_collections.ConfigDict, arg: str | None, values: Mapping[str, Any]) -> None:
    """Sets `values` (key -> value) on parsed config arguments `a`, in place, for every key that
    the argument string `arg` (`key=value,...`, as `parse_arg` read it) does not name: a
    variant's data-dependent defaults that an explicit argument, even one equal to the static
    default (e.g. `patience=0`), still overrides."""
    given = {item.partition("=")[0] for item in (arg or "").split(",") if item}
    for key, value in values.items():
        if key not in given:
            a[key] = value


def apply_budgets(stages: Mapping[str, ml_collections.ConfigDict], a: Any) -> None:
    """Writes the budget arguments (`BUDGET_ARGS`) of parsed config arguments `a` into every
    train stage of `stages`, in place: `patience > 0` sets `early_stopping.{patience, min_delta,
    val_fraction}`, `plateau > 0` sets `reduce_on_plateau.{patience, factor}`; with both 0
    nothing changes (the stages train as their recipe set them).

    Source: kdjax.train.convergence (early stopping: Keras' rule; reduce-on-plateau:
    `optax.contrib.reduce_on_plateau`).

    Raises:
      ValueError: a negative patience/plateau, min_delta without patience, plateau_factor
        without plateau, or val_fraction outside (0, 1).
    """
    if a.patience < 0 or a.plateau < 0:
        raise ValueError(
            f"config arguments patience={a.patience}, plateau={a.plateau}: expected >= 0 (0: off)"
        )
    if a.min_delta and not a.patience:
        raise ValueError(f"config argument min_delta={a.min_delta}: needs patience=N (N > 0)")
    if a.plateau_factor != BUDGET_ARGS["plateau_factor"] and not a.plateau:
        raise ValueError(
            f"config argument plateau_factor={a.plateau_factor}: needs plateau=N (N > 0)"
        )
    if not 0 < a.val_fraction < 1:
        raise ValueError(f"config argument val_fraction={a.val_fraction}: expected 0 < x < 1")
    for st in stages.values():
        if st.get("kind", "train") != "train":
            continue
        with st.unlocked():
            if a.patience:
                es = st.get("early_stopping") or ml_collections.ConfigDict(EARLY_STOPPING_OFF)
                es.update(patience=int(a.patience), min_delta=float(a.min_delta),
                          val_fraction=float(a.val_fraction))  # fmt: skip
                st.early_stopping = es
            if a.plateau:
                rp = st.get("reduce_on_plateau") or ml_collections.ConfigDict(PLATEAU_OFF)
                rp.update(patience=int(a.plateau), factor=float(a.plateau_factor))
                st.reduce_on_plateau = rp


STAGE_SEP = "+"


def parse_stage_list(value: str) -> list[str]:
    """`"a+b+c"` -> `["a", "b", "c"]` (empty items dropped); the inverse of `format_stage_list`.

    Raises:
      ValueError: a `,` in `value` (it separates config arguments, never stages).
    """
    value = str(value)
    if "," in value:
        raise ValueError(
            f"config argument stage={value!r}: join stage names with {STAGE_SEP!r}, "
            "not ',' (',' separates config arguments)"
        )
    return [x for x in value.split(STAGE_SEP) if x]


def format_stage_list(names: Iterable[str]) -> str:
    """`["a", "b"]` -> `"a+b"`: the command-line form of a stage list (inverse of
    `parse_stage_list`)."""
    return STAGE_SEP.join(names)


def stage_run(
    value: str, stages: Iterable[str], groups: Mapping[str, Sequence[str]] | None = None
) -> str:
    """The `run` field of a staged config from a `stage=` argument.

    Args:
      value: `+`-joined stage or group names (`parse_stage_list`), e.g. `teacher+kd` or `all`.
      stages: every stage name of the config.
      groups: named lists of stages (e.g. `all`, `default`); a group name expands in place.

    Returns:
      The stage names joined by `,` (the separator `kdjax.train.stage_list.stage_runs` reads), in
      the given order.

    Raises:
      ValueError: an empty list, or a name that is neither a stage nor a group (lists both).
    """
    stages, groups = list(stages), dict(groups or {})
    names: list[str] = []
    for x in parse_stage_list(value):
        if x in groups:
            names.extend(groups[x])
        elif x in stages:
            names.append(x)
        else:
            raise ValueError(
                f"config argument stage={value!r}: unknown stage {x!r}; stages: "
                f"{', '.join(stages)}; groups: {', '.join(groups) or 'none'}"
            )
    if not names:
        raise ValueError(f"config argument stage={value!r}: expected at least one stage name")
    return ",".join(names)


def frontend(name: str, **overrides: Any) -> dict[str, Any]:
    """A copy of a named front-end preset (kdjax.frontends.PRESETS) with overrides (at the
    preset's own rate; `preset(name, sample_rate=...)` rescales to another)."""
    return dict(FRONTENDS[name]) | overrides


def data(
    name: str,
    *,
    train_split="train",
    eval_split="validation",
    test_split="test",
    clip_seconds: float,
    **kw: Any,
) -> dict[str, Any]:
    """The `data` block of a train config.

    `format`: "files" (decode the dataset's audio files) or "tfds" (its TFDS/ArrayRecord copy,
    built into `tfds_dir` on first use, default `<data_root>/tfds`).
    """
    return dict(
        name=name,
        train_split=train_split,
        eval_split=eval_split,
        test_split=test_split,
        clip_seconds=clip_seconds,
        train_crop="random",
        read_threads=1,
        num_shards=0,
        kw=kw,
        format="files",
        tfds_dir="",
    )


def ce(model: str = "student", weight: float = 1.0) -> dict[str, Any]:
    """Cross-entropy of a model's logits against the batch labels."""
    return dict(fn="softmax_xent", weight=weight, inputs=[f"{model}.logits", "batch.labels"])


def hinton_kd(
    model: str = "student",
    teacher: str = "teacher",
    *,
    weight: float,
    temperature: float,
    t2_scale: bool = True,
) -> dict[str, Any]:
    """Hinton et al. 2015 KD term: T^2 KL(softmax(z_t/T) || softmax(z_s/T))."""
    return dict(
        fn="kd_kl",
        weight=weight,
        kw=dict(temperature=temperature, t2_scale=t2_scale),
        inputs=[f"{model}.logits", f"teacher.{teacher}.logits"],
    )


def task_loss(model: str = "student", *, multi_label: bool, weight: float = 1.0) -> dict[str, Any]:
    """The task loss term of `model`: softmax cross-entropy (single-label) or, for multi-label
    data, per-class sigmoid cross-entropy masked by `batch.label_mask` `[B, C]` (labels whose
    value is unknown, e.g. SONYC-UST's incomplete tags or OpenMIC's unobserved classes, count
    for nothing; every data source provides the mask, all ones where every label is known).

    Source: `kdjax.losses.softmax_xent` / `sigmoid_xent` (binary cross-entropy, as DCASE 2019
    Task 5 baselines and EAsT's BCE).
    """
    if multi_label:
        return dict(
            fn="sigmoid_xent",
            weight=weight,
            inputs=[f"{model}.logits", "batch.labels"],
            kw_inputs={"mask": "batch.label_mask"},
        )
    return ce(model, weight=weight)


def train_config(
    *,
    seed: int = 0,
    batch_size: int,
    num_steps: int,
    lr: float,
    warmup_steps: int = 0,
    weight_decay: float = 1e-4,
    grad_clip: float = 0.0,
    eval_every: int,
    checkpoint_every: int,
    log_every: int = 50,
) -> ml_collections.ConfigDict:
    """The fields every train config has (optimiser, schedule, loop cadence); add data/models/losses."""
    c = ml_collections.ConfigDict()
    c.seed = seed
    c.batch_size = batch_size
    c.eval_batch_size = batch_size
    c.num_steps = num_steps
    c.optimizer = dict(name="adamw", kw=dict(weight_decay=weight_decay), grad_clip=grad_clip)
    c.schedule = dict(name="cosine", lr=lr, warmup_steps=warmup_steps, end_factor=0.0)
    c.eval_every = eval_every
    c.checkpoint_every = checkpoint_every
    c.log_every = log_every
    c.eval_metric = "accuracy"
    c.eval_model = ""
    c.keep_checkpoints = 2
    c.teacher_train_mode = False
    c.mixup_alpha = 0.0
    # Mixed precision: "bfloat16" computes models in bf16 (params, optimiser state, front-ends
    # and losses stay float32); for GPUs/TPUs, slower on CPU (launch/README.md).
    c.compute_dtype = "float32"
    c.quiet = False
    # Convergence budgets, off (patience 0) but present so that absl overrides such as
    # --config.stages.kd.early_stopping.patience=5 find their fields (kdjax.train.convergence).
    c.early_stopping = dict(EARLY_STOPPING_OFF)
    c.reduce_on_plateau = dict(PLATEAU_OFF)
    return c


ESC10_FOLDS = (1, 2, 3, 4, 5)


def esc10_folds(*, clip_seconds: float, **kw: Any) -> dict[str, Any]:
    """The `data` block of ESC-10's official 5-fold cross-validation (Piczak 2015; the `esc50`
    source's `esc10` subset, 16 kHz copies): train on `train_fold{fold}` (4 folds, 320 clips), no
    validation split (the last parameters are kept), test on `test_fold{fold}` (80 clips).
    `{fold}` is filled per repetition from the staged config's `folds` (`ESC10_FOLDS`).

    Args:
      clip_seconds: s each clip is cropped/padded to (ESC-10 clips are 5 s).
      kw: further source arguments (e.g. `max_examples`).
    """
    return data("esc50", train_split="train_fold{fold}", eval_split="",
                test_split="test_fold{fold}", clip_seconds=clip_seconds, subset="esc10",
                cache=True, **kw)  # fmt: skip


def folder_data(
    root: str,
    csv: str,
    *,
    sample_rate: int,
    clip_seconds: float,
    audio_dir: str = "",
    path_column: str = "filename",
    label_column: str = "label",
    label_sep: str = "",
    split_column: str = "",
    fold_column: str = "",
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    cache: bool = False,
    train_split: str = "train",
    eval_split: str = "validation",
    test_split: str = "test",
) -> dict[str, Any]:
    """The `data` block (as `data(...)` returns) for your own audio + CSV (`kdjax.data.folder`).

    Set `c.data = common.folder_data(...)` (or `c.stages.<stage>.data = ...` in a staged
    config such as configs/fsdd.py) to train any recipe on a user's corpus; README "Train on
    your own data" has a command that runs. Unset columns are "" (not None) so every key can
    still be overridden with `--config....data.kw.<key>=...`; `max_examples=0` (all clips).

    Args:
      root: the corpus folder (holds `csv`). csv: the CSV's file name in root.
      sample_rate: Hz every file must have (the models' front-ends must use it too).
      clip_seconds: clip length the pipeline crops/pads to.
      audio_dir: audio folder relative to root ("" = root); the CSV's paths are relative to it.
      path_column, label_column, label_sep, split_column, fold_column, val_fraction,
        test_fraction, seed, cache: passed to `kdjax.data.folder.source` (see its docstring:
        without a validation split, `val_fraction` of train is held out, stratified).
      train_split, eval_split, test_split: split names (default train/validation/test).
    """
    return data(
        "folder",
        train_split=train_split,
        eval_split=eval_split,
        test_split=test_split,
        clip_seconds=clip_seconds,
        root=str(root),
        csv=csv,
        audio_dir=audio_dir,
        sample_rate=int(sample_rate),
        path_column=path_column,
        label_column=label_column,
        label_sep=label_sep,
        split_column=split_column,
        fold_column=fold_column,
        val_fraction=float(val_fraction),
        test_fraction=float(test_fraction),
        seed=int(seed),
        cache=cache,
        max_examples=0,
    )


def train_stage(
    *,
    data: Mapping[str, Any],
    models: Mapping[str, Any],
    losses: Mapping[str, Any],
    teachers: Mapping[str, Any] | None = None,
    repeat: bool = True,
    baseline: str = "",
    seed: int = 0,
    batch_size: int,
    num_steps: int,
    lr: float,
    warmup_steps: int = 0,
    weight_decay: float = 1e-4,
    grad_clip: float = 0.0,
    eval_every: int,
    checkpoint_every: int,
    log_every: int = 50,
    **fields: Any,
) -> ml_collections.ConfigDict:
    """One `kind="train"` stage of a staged config (`kdjax.train.stages`): `train_config(...)`
    plus the data block, trainable `models`, frozen `teachers` and loss terms.

    Args:
      data: the data block (`data(...)`); copied, so stages never share (and mutate) one dict.
      models, teachers, losses: name -> node / loss-term dicts (DESIGN.md "Contracts").
      repeat: run once per seed/fold (students) or once (teachers).
      baseline: the stage this one is paired with in summary.json ("" = none).
      seed ... log_every: as `train_config`.
      fields: any other stage field, set last (e.g. eval_metric, quiet, mixup_alpha,
        eval_model, kind, frontends).
    """
    c = train_config(
        seed=seed,
        batch_size=batch_size,
        num_steps=num_steps,
        lr=lr,
        warmup_steps=warmup_steps,
        weight_decay=weight_decay,
        grad_clip=grad_clip,
        eval_every=eval_every,
        checkpoint_every=checkpoint_every,
        log_every=log_every,
    )
    c.data = _copy_data(data)
    c.models = dict(models)
    c.teachers = dict(teachers or {})
    c.losses = dict(losses)
    c.repeat = repeat
    c.baseline = baseline
    for k, v in fields.items():
        if k in ("early_stopping", "reduce_on_plateau") and v:  # over the off block's fields
            v = {**c[k].to_dict(), **dict(v)}
        c[k] = v
    return c


def cache_stage(
    *,
    data: Mapping[str, Any],
    cache: Mapping[str, Any],
    batch_size: int,
    teachers: Mapping[str, Any] | None = None,
    repeat: bool = False,
    seed: int = 0,
) -> ml_collections.ConfigDict:
    """A `kind="cache"` stage (`kdjax.train.cache.cache_arrays`): frozen `teachers` and/or an
    external extractor run once over every split of `data`, outputs stored by clip index
    (`<stage dir>/arrays/<split>/<key>.npy`, joined by later stages with
    `data.join = {key: "{stage:<name>}/arrays/{split}/<key>.npy"}`).

    Args:
      data: the data block (copied). cache: `dict(outputs={key: path or {fn, kw, inputs}},
        extractor="module:function", extractor_kw={...})`. batch_size: clips per forward.
      teachers: frozen models the outputs read (`teacher.<name>...`). repeat: once per
        seed/fold (when the splits differ per fold) or once.
    """
    c = ml_collections.ConfigDict()
    c.kind = "cache"
    c.data = _copy_data(data)
    c.batch_size = batch_size
    c.eval_batch_size = batch_size
    c.seed = seed
    c.models = {}
    c.teachers = dict(teachers or {})
    c.cache = dict(cache)
    c.repeat = repeat
    return c


def invert_stage(
    *,
    data: Mapping[str, Any],
    frontends: Mapping[str, Any],
    teachers: Mapping[str, Any],
    invert: Mapping[str, Any],
    losses: Mapping[str, Any],
    repeat: bool = True,
    seed: int = 0,
) -> ml_collections.ConfigDict:
    """A `kind="invert"` stage (`kdjax.train.invert`): features optimised so that frozen
    `teachers` meet the weighted `losses` (DeepInversion, Yin et al. CVPR 2020, and variants),
    written as a synthetic dataset for later stages (`{stage:<name>}/synthetic`).

    Args:
      data: the data block (only its metadata is read: no split is loaded; copied).
      frontends: named front-ends (`features.<name>` is what is inverted).
      teachers: the frozen models (with `capture_bn=True` for BatchNorm statistics terms).
      invert: the `invert` block (fields: `kdjax.train.invert.INVERT_FIELDS`).
      losses: loss terms over `teacher.*`, `features.*`, `batch.*`, `view2.*`.
      repeat: one inversion per seed (True) or one for every seed.
    """
    c = ml_collections.ConfigDict()
    c.kind, c.seed, c.repeat, c.baseline = "invert", seed, bool(repeat), ""
    c.data = _copy_data(data)
    c.frontends = dict(frontends)
    c.models = {}
    c.teachers = dict(teachers)
    c.invert = dict(invert)
    c.losses = dict(losses)
    return c


def _copy_data(data: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(data)
    if "kw" in out:
        out["kw"] = dict(out["kw"])
    return out


CLAIM_DIRECTIONS = ("greater", "less")


def claim(
    stages: Mapping[str, Any],
    *,
    arm: str,
    baseline: str,
    effect: float,
    source: str,
    metric: str = "",
    direction: str = "greater",
    secondary: Sequence[tuple[str, str]] = (),
    paper: str = "",
    test_train_ratio: float = 0.0,
) -> dict[str, Any]:
    """The `claim` of a staged config: which comparison its results table tests (REPRODUCTION.md).

    Schema (top level of the staged config, read by the results tables and reports):
      primary    dict(arm=<stage>, baseline=<stage>): the paired comparison arm - baseline
                 (same seeds/folds).
      metric     the result.json test metric, "test_<eval_metric>" (e.g. test_accuracy,
                 test_micro_auprc, test_mean_average_precision); default: the arm's.
      effect     the smallest effect of interest, in the metric's units (a fraction for
                 accuracy: 0.0179 = 1.79 points), > 0.
      direction  "greater" (the paper says the arm beats the baseline) or "less".
      source     the paper, table/section the effect comes from, or the stated reason for a
                 chosen value where the paper gives none.
      secondary  [dict(arm=..., baseline=...), ...]: further comparisons (Holm-corrected).
      paper      optional: the paper's number, as text.
      test_train_ratio  optional: n_test / n_train of k-fold cross-validation, for the
                 Nadeau-Bengio corrected interval (e.g. 80 / 320 on ESC-10's folds).
    `kdjax.report.check_claim` reads this schema.

    Args:
      stages: the config's stages (names and eval_metric are checked against it).
      secondary: (arm, baseline) pairs.

    Raises:
      ValueError: an arm/baseline that is not a train stage, arm == baseline, a metric other
        than the arm's, a non-positive effect, an unknown direction or an empty source.
    """

    def check(a: str, b: str) -> dict[str, str]:
        for role, name in (("arm", a), ("baseline", b)):
            if name not in stages or stages[name].get("kind", "train") != "train":
                raise ValueError(
                    f"claim {role}={name!r}: expected a train stage, one of "
                    f"{[n for n in stages if stages[n].get('kind', 'train') == 'train']}"
                )
        if a == b:
            raise ValueError(f"claim: arm and baseline are both {a!r}")
        return dict(arm=a, baseline=b)

    primary = check(arm, baseline)
    want = "test_" + str(stages[arm].get("eval_metric", "accuracy"))
    metric = metric or want
    if metric != want:
        raise ValueError(f"claim metric={metric!r}: stage {arm!r} selects and reports {want!r}")
    if not float(effect) > 0:
        raise ValueError(f"claim effect={effect!r}: expected > 0 (the metric's units)")
    if direction not in CLAIM_DIRECTIONS:
        raise ValueError(f"claim direction={direction!r}: expected one of {CLAIM_DIRECTIONS}")
    if not str(source).strip():
        raise ValueError(
            "claim source: expected the paper/table the effect comes from, or its reason"
        )
    out = dict(
        primary=primary,
        metric=metric,
        effect=float(effect),
        direction=direction,
        source=str(source),
        secondary=[check(a, b) for a, b in secondary],
    )
    if paper:
        out["paper"] = str(paper)
    if test_train_ratio:
        if not 0 < test_train_ratio < 1:
            raise ValueError(
                f"claim test_train_ratio={test_train_ratio!r}: expected n_test / n_train in (0, 1)"
            )
        out["test_train_ratio"] = float(test_train_ratio)
    return out
