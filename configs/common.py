"""Shared pieces of the recipe configs: argument parsing, datasets, front-ends, optimiser, losses."""

from __future__ import annotations

from typing import Any

import ml_collections

from kdjax.frontends import PRESETS as FRONTENDS  # noqa: F401  (named front-end presets)


def parse_arg(arg: str | None, **defaults: Any) -> ml_collections.ConfigDict:
    """Parses big_vision-style `key=value,key2=value2` config arguments onto typed defaults.

    Raises:
      ValueError: a key that is not among the defaults (names it and lists the valid ones),
        or a value that does not parse as the default's type.
    """
    out = dict(defaults)
    for item in (arg or "").split(","):
        if not item:
            continue
        key, _, value = item.partition("=")
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
            raise ValueError(f"config argument {key}={value!r}: expected {type(d).__name__}") from None
    return ml_collections.ConfigDict(out)


def frontend(preset: str, **overrides: Any) -> dict[str, Any]:
    """A copy of a named front-end preset (kdjax.frontends.PRESETS) with overrides."""
    return dict(FRONTENDS[preset]) | overrides


def data(name: str, *, train_split="train", eval_split="validation", test_split="test",
         clip_seconds: float, **kw: Any) -> dict[str, Any]:
    """The `data` block of a train config.

    `format`: "files" (decode the dataset's audio files) or "tfds" (its TFDS/ArrayRecord copy,
    built into `tfds_dir` on first use, default `<data_root>/tfds`).
    """
    return dict(name=name, train_split=train_split, eval_split=eval_split, test_split=test_split,
                clip_seconds=clip_seconds, train_crop="random", read_threads=1, num_shards=0, kw=kw,
                format="files", tfds_dir="")


def ce(model: str = "student", weight: float = 1.0) -> dict[str, Any]:
    """Cross-entropy of a model's logits against the batch labels."""
    return dict(fn="softmax_xent", weight=weight, inputs=[f"{model}.logits", "batch.labels"])


def hinton_kd(model: str = "student", teacher: str = "teacher", *, weight: float,
              temperature: float, t2_scale: bool = True) -> dict[str, Any]:
    """Hinton et al. 2015 KD term: T^2 KL(softmax(z_t/T) || softmax(z_s/T))."""
    return dict(fn="kd_kl", weight=weight, kw=dict(temperature=temperature, t2_scale=t2_scale),
                inputs=[f"{model}.logits", f"teacher.{teacher}.logits"])


def train_config(*, seed: int = 0, batch_size: int, num_steps: int, lr: float,
                 warmup_steps: int = 0, weight_decay: float = 1e-4, grad_clip: float = 0.0,
                 eval_every: int, checkpoint_every: int, log_every: int = 50) -> ml_collections.ConfigDict:
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
    return c


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
