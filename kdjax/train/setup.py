"""What every stage sets up from its config before it runs: sources, Program, teachers, logger,
optimiser, and how it writes its result and stops on a NaN.

One `StageContext` is built once per stage run (`StageContext.build(cfg, workdir)`) and used by
the three stage kinds: train (kdjax.train.loop), invert (kdjax.train.invert) and cache
(kdjax.train.cache). It holds the split sources, the data's sample rate, class count and clip
length, the compiled Program (kdjax.train.program) and the frozen teachers' variables. The data
flow from config to result is drawn in docs/architecture.md.

Also here: `make_optimizer` (optax), `Logger` (metrics.jsonl + TensorBoard), `write_result`
(result.json, process 0), `check_finite` (the NaN/inf stop shared by training and inversion,
raising `TrainingDivergedError`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import jax
import ml_collections
import numpy as np
import optax

from kdjax.data import data_root, get_source, pipeline
from kdjax.data.join import JoinedSource, load_joined_arrays, load_views, teacher_joins
from kdjax.train import compile_cache
from kdjax.train.checkpoint import load_best_variables
from kdjax.train.convergence import carve_if_needed, plateau_config, plateau_scale
from kdjax.train.program import Program, build_program

ROLES = ("train", "validation", "test")


class TrainingDivergedError(FloatingPointError):
    """The loss (or the inversion objective) became NaN/inf; what was saved before is kept."""


# ---------------------------------------------------------------------------------------------
# Data.


def resolve_path(path: str, workdir: str) -> str:
    """Expands `{workdir}` / `{parent}` (the workdir's parent folder) in a config path
    (other braces, e.g. `{split}`, are left for later)."""
    return str(path).replace("{workdir}", workdir).replace("{parent}", os.path.dirname(os.path.abspath(workdir)))


def data_source(d: ml_collections.ConfigDict, split: str):
    """The source of one split: the dataset's files (`d.format="files"`, default) or its
    TFDS/ArrayRecord copy read with `tfds.data_source` (`d.format="tfds"`, built into
    `d.tfds_dir` on first use; no TensorFlow needed).

    Raises:
      ValueError: unknown format; see also `get_source` / `tfds_builder.tfds_source`.
    """
    kw = dict(d.get("kw", {}))
    fmt = d.get("format", "files")
    if fmt == "files":
        return get_source(d.name, split, **kw)
    if fmt == "tfds":
        from kdjax.data.tfds_builder import tfds_source

        if kw.pop("max_examples", 0):
            raise ValueError("data.kw.max_examples is not supported with data.format='tfds'")
        raw = {"raw_data_dir": kw.pop("data_dir")} if kw.get("data_dir") else {}
        tfds_dir = d.get("tfds_dir") or os.path.join(str(data_root()), "tfds")
        return tfds_source(d.name, split, data_dir=tfds_dir, **raw, **kw)
    raise ValueError(f"data.format={fmt!r}: expected 'files' or 'tfds'")


def split_sources(cfg: ml_collections.ConfigDict, workdir: str,
                  roles: tuple[str, ...] = ROLES) -> dict[str, Any]:
    """The train/validation/test sources of a config (None where the split is not set or its
    role is not in `roles`).

    `data.train_source` ({name, kw}, optional) reads the train split from another source
    (e.g. `synthetic` shards of an invert stage) while validation/test stay on `data`.
    `data.join` ({key: path}) joins per-clip arrays by clip index to every split
    (kdjax.data.join), and so do cached teachers' outputs (`teachers.<t>.cached`,
    kdjax.data.join.teacher_joins).

    Raises:
      ValueError: joined arrays with in-step mixup or random crops, cached teacher outputs with
        random crops (they would silently no longer match the audio).
    """
    d = cfg.data
    join = {k: resolve_path(v, workdir) for k, v in dict(d.get("join", {}) or {}).items()}
    if join:
        if float(cfg.get("mixup_alpha", 0.0)) > 0:
            raise ValueError(f"data.join {sorted(join)} with mixup_alpha={cfg.mixup_alpha}: cached per-clip "
                             "arrays would not match the mixed audio; set mixup_alpha=0")
        if d.get("train_crop", "random") == "random":
            raise ValueError(f"data.join {sorted(join)} with data.train_crop='random': cached per-clip arrays "
                             "are computed on the start of each clip; set data.train_crop='start'")
    # Cached (offline) teacher outputs, mixed with the audio under mixup (kdjax.train.forward.mix).
    join |= {k: resolve_path(v, workdir) for k, v in teacher_joins(cfg).items()}
    out = {}
    for role, split in zip(ROLES, split_names(cfg).values(), strict=True):
        if not split or role not in roles:
            out[role] = None
            continue
        ts = d.get("train_source")
        if role == "train" and ts and ts.get("name"):
            kw = {k: resolve_path(v, workdir) if isinstance(v, str) else v for k, v in dict(ts.get("kw", {})).items()}
            src = get_source(ts.name, split, **kw)
        else:
            src = data_source(d, split)
        if join:  # the train split with fixed views: arrays keyed by (clip, view), kdjax.data.join
            views = (load_views(resolve_path(d.views, workdir), split, len(src))
                     if role == "train" and d.get("train_crop") == "views" else None)
            src = JoinedSource(src, load_joined_arrays(join, split, len(src)), views)
        out[role] = src
    return out


def split_names(cfg: ml_collections.ConfigDict) -> dict[str, str]:
    """`{role: split name}` of the data block (`train_split`, `eval_split`, `test_split`; "" if unset)."""
    d = cfg.data
    return {"train": d.train_split, "validation": d.get("eval_split") or "", "test": d.get("test_split") or ""}


def example_batch(source, clip_samples: int, n: int = 2) -> dict[str, np.ndarray]:
    """`n` copies of the source's first element, fitted to `clip_samples`, for shape inference."""
    ex = pipeline._crop(clip_samples, "start")(source[0], np.random.default_rng(0))
    return {k: np.stack([np.asarray(ex[k])] * n) for k in ex}


def load_teachers(cfg: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Every frozen module's variables from its checkpoint (`teachers.<n>.checkpoint`, a kdjax
    workdir; `{workdir}`/`{parent}` expanded), as host arrays.

    Raises:
      ValueError: a teacher without `checkpoint`.
      FileNotFoundError / KeyError / ValueError: see `load_best_variables` (missing, wrong
        model name, never evaluated).
    """
    out = {}
    for n, t in cfg.get("teachers", {}).items():
        if t.get("cached"):  # offline KD: its outputs come from a cache stage (kdjax.train.program)
            continue
        if not t.get("checkpoint"):
            raise ValueError(f"teachers.{n}.checkpoint: expected the workdir of the run that trained it")
        out[n] = load_best_variables(resolve_path(t.checkpoint, workdir), t.get("checkpoint_model", n))
    return out


# ---------------------------------------------------------------------------------------------
# The stage context.


@dataclasses.dataclass(frozen=True)
class StageContext:
    """What a stage run needs from its config, built once by `StageContext.build`.

    Attributes:
      cfg: the stage config.
      workdir: the run folder (absolute).
      sources: `{role: source or None}` for "train", "validation", "test".
      sample_rate: the data's sample rate (Hz), the same in every split.
      num_classes: C, the same in every split.
      clip_samples: `round(data.clip_seconds * sample_rate)` (samples).
      multi_label: the data is multi-label (tagging).
      program: the compiled Program (kdjax.train.program.build_program).
      teachers: every frozen module's variables `{name: {"params", "batch_stats"}}` (host arrays).
    """

    cfg: ml_collections.ConfigDict
    workdir: str
    sources: Mapping[str, Any]
    sample_rate: int
    num_classes: int
    clip_samples: int
    multi_label: bool
    program: Program
    teachers: Mapping[str, Any]

    @classmethod
    def build(cls, cfg: ml_collections.ConfigDict, workdir: str,
              roles: tuple[str, ...] = ROLES) -> StageContext:
        """Reads the splits in `roles` (their metadata; no audio is decoded here), compiles the
        Program and loads the teachers.

        The sample rate and class count come from the first split read (train, if read).
        It also points jax's persistent compilation cache at its directory
        (kdjax.train.compile_cache.configure) and, with `early_stopping` on and no validation
        split, carves one from train (kdjax.train.convergence.carve_if_needed).

        Raises:
          ValueError: no split to read, or splits that disagree on sample rate or classes (names
            the split); see also `split_sources`, `build_program` and `load_teachers`.
        """
        workdir = os.path.abspath(workdir)
        compile_cache.configure(cfg)  # before anything compiles
        sources = split_sources(cfg, workdir, roles)
        if "validation" in roles:  # early stopping without a validation split: carve one
            sources = carve_if_needed(cfg, sources, log=jax.process_index() == 0)
        present = [(r, s) for r, s in sources.items() if s is not None]
        if not present:
            raise ValueError(f"data: none of the splits {list(roles)} is set ({split_names(cfg)})")
        first_role, first = present[0]
        sr, num_classes = first.sample_rate, first.num_classes
        for role, src in present[1:]:
            if (src.sample_rate, src.num_classes) != (sr, num_classes):
                raise ValueError(f"data: the {role} split is {src.sample_rate} Hz / {src.num_classes} classes, "
                                 f"the {first_role} split {sr} Hz / {num_classes} classes")
        multi_label = bool(getattr(first, "multi_label", False))
        return cls(
            cfg=cfg, workdir=workdir, sources=sources, sample_rate=sr, num_classes=num_classes,
            clip_samples=int(round(cfg.data.clip_seconds * sr)), multi_label=multi_label,
            program=build_program(cfg, num_classes, sr, multi_label=multi_label),
            teachers=load_teachers(cfg, workdir),
        )


# ---------------------------------------------------------------------------------------------
# Optimiser.


def make_optimizer(cfg: ml_collections.ConfigDict) -> tuple[optax.GradientTransformation, Any]:
    """optax optimiser and learning-rate schedule from `cfg.optimizer`, `cfg.schedule`, `cfg.num_steps`.

    cfg.optimizer: {name: any optax optimiser ("adamw", "sgd", ...), kw: its keywords, grad_clip}.
    cfg.schedule: {name: "cosine" | "constant", lr, warmup_steps, end_factor}.
    cfg.reduce_on_plateau (optional): `optax.contrib.reduce_on_plateau`'s keywords; its scale
    multiplies the updates (kdjax.train.convergence.plateau_scale, chained last).

    Raises:
      ValueError: unknown optimiser or schedule name.
    """
    o, s = cfg.optimizer, cfg.schedule
    warmup = int(s.get("warmup_steps", 0))
    if s.name == "cosine":
        sched = optax.warmup_cosine_decay_schedule(
            0.0, s.lr, max(warmup, 1), max(cfg.num_steps, warmup + 1), s.lr * s.get("end_factor", 0.0)
        )
    elif s.name == "constant":
        sched = optax.join_schedules(
            [optax.linear_schedule(0.0, s.lr, max(warmup, 1)), optax.constant_schedule(s.lr)], [warmup]
        )
    else:
        raise ValueError(f"schedule.name={s.name!r}: expected 'cosine' or 'constant'")
    make = getattr(optax, o.name, None)
    if make is None:
        raise ValueError(f"optimizer.name={o.name!r}: no such optax optimiser")
    tx = make(learning_rate=sched, **dict(o.get("kw", {})))
    if o.get("grad_clip"):
        tx = optax.chain(optax.clip_by_global_norm(o.grad_clip), tx)
    plateau = plateau_config(cfg)
    if plateau is not None:  # last: the state is opt_state[-1] (kdjax.train.convergence)
        tx = optax.chain(tx, plateau_scale(**plateau))
    return tx, sched


# ---------------------------------------------------------------------------------------------
# Logs, results, the NaN stop (process 0 writes).


class Logger:
    """JSON lines (`<workdir>/metrics.jsonl`) + TensorBoard (`<workdir>/tb/`); no-ops on processes
    other than 0."""

    def __init__(self, workdir: str, enabled: bool):
        self.enabled = enabled
        if enabled:
            from tensorboardX import SummaryWriter

            os.makedirs(workdir, exist_ok=True)
            self.jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
            self.tb = SummaryWriter(os.path.join(workdir, "tb"))

    def write(self, step: int, values: Mapping[str, Any]) -> None:
        """One row `{"step": step, name: value, ...}`; scalars also go to TensorBoard."""
        if not self.enabled:
            return
        row = {"step": int(step)}
        for k, v in values.items():
            v = np.asarray(v)
            row[k] = v.tolist() if v.ndim else float(v)
            if v.ndim == 0:
                self.tb.add_scalar(k, float(v), int(step))
        self.jsonl.write(json.dumps(row) + "\n")
        self.jsonl.flush()

    def close(self) -> None:
        if self.enabled:
            self.jsonl.close()
            self.tb.close()


def write_result(workdir: str, result: Mapping[str, Any]) -> None:
    """Writes `<workdir>/result.json` on process 0 (complete files only: a stage whose
    result.json exists counts as finished, see kdjax.train.stages)."""
    if jax.process_index() != 0:
        return
    path = os.path.join(workdir, "result.json")
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(path + ".tmp", path)


def check_finite(metrics: Mapping[str, Any], *, what: str, at: str,
                 kept: str | Callable[[], str]) -> dict[str, Any]:
    """The metrics on the host, after checking that `metrics["loss"]` is finite.

    Args:
      metrics: a step's metrics (device arrays), with "loss" and its terms "loss/<name>".
      what: the quantity's name in the message ("loss", "invert: objective").
      at: where it happened ("step 5", "batch 1 step 0").
      kept: what is kept on disk, or a function returning it (called only on a NaN, e.g. to
        wait for a pending checkpoint first).

    Raises:
      TrainingDivergedError: a one-line message `"<what> is nan at <at> (terms {...}); stopped,
        <kept>"`.
    """
    m = jax.device_get(metrics)
    if not np.isfinite(m["loss"]):
        bad = {k: float(v) for k, v in m.items() if k.startswith("loss")}
        raise TrainingDivergedError(f"{what} is {float(m['loss'])} at {at} (terms {bad}); stopped, "
                                    f"{kept() if callable(kept) else kept}")
    return m
