"""The training loop: data -> jitted step on a ("data",) mesh -> eval -> checkpoints -> result.

`train_and_evaluate(cfg, workdir)` trains the config's trainable models
(`cfg.models`) with frozen teachers (`cfg.teachers`), resumes from the latest
checkpoint in `workdir`, keeps per model the parameters with the best
validation metric, and finally evaluates those on the test split. It writes:
  workdir/metrics.jsonl   one JSON object per logged train step / evaluation
  workdir/tb/             TensorBoard event files
  workdir/ckpt/           orbax checkpoints (see kdjax.train.checkpoint)
  workdir/result.json     the final test metrics, parameter counts, training time
Only process 0 writes logs and result files; checkpoints are saved collectively.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import signal
import time
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from kdjax import frontends as frontends_lib
from kdjax import models as models_lib
from kdjax.data import data_root, get_source, pipeline
from kdjax.train import metrics as metrics_lib
from kdjax.train.checkpoint import Checkpointer, load_best_variables
from kdjax.train.state import TrainState
from kdjax.train.step import LossTerm, StepSpec, eval_logits, jit_train_step


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN/inf; the last good checkpoint is kept."""


class Preempted(SystemExit):
    """SIGTERM received (e.g. TPU VM preemption); a checkpoint was saved first."""


# ---------------------------------------------------------------------------------------------
# Building blocks from the config.


def make_optimizer(cfg: ml_collections.ConfigDict) -> tuple[optax.GradientTransformation, Any]:
    """optax optimiser and learning-rate schedule from `cfg.optimizer`, `cfg.schedule`, `cfg.num_steps`.

    cfg.optimizer: {name: any optax optimiser ("adamw", "sgd", ...), kw: its keywords, grad_clip}.
    cfg.schedule: {name: "cosine" | "constant", lr, warmup_steps, end_factor}.

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
    return tx, sched


def _frontend_fns(entries: Mapping[str, Any], sample_rate: int) -> dict[str, Any]:
    """One front-end function per entry; identical front-end configs share one function object
    (so the step computes them once)."""
    by_key: dict[str, Any] = {}
    out = {}
    for name, fe_cfg in entries.items():
        fe = dict(fe_cfg)
        sr = fe.get("sample_rate")
        if sr is not None and int(sr) != int(sample_rate):
            raise ValueError(
                f"{name}.frontend.sample_rate={sr} but the data is {sample_rate} Hz"
            )
        key = json.dumps(fe, sort_keys=True, default=str)
        if key not in by_key:
            by_key[key] = frontends_lib.make_frontend(fe)
        out[name] = by_key[key]
    return out


def build_spec(cfg: ml_collections.ConfigDict, num_classes: int, sample_rate: int) -> StepSpec:
    """StepSpec (models, teachers, front-ends, loss terms) of a config.

    `cfg.compute_dtype` ("float32" default, "bfloat16"): mixed precision. "bfloat16" is
    passed to every model (trainable and teacher) as `dtype=`: its computation runs in
    bfloat16 while parameters, BatchNorm statistics and optimiser state stay float32; models
    return float32 logits/feats, so losses are float32. Front-ends compute in float32.

    Raises:
      ValueError: unknown compute_dtype.
    """
    dtype = str(cfg.get("compute_dtype", "float32"))
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"compute_dtype={dtype!r}: expected 'float32' or 'bfloat16'")
    extra = {} if dtype == "float32" else {"dtype": jnp.dtype(dtype)}

    def build(m):
        return models_lib.build(m.model, num_classes=num_classes, **(dict(m.get("kw", {})) | extra))

    models = {n: build(m) for n, m in cfg.models.items()}
    teachers = {n: build(t) for n, t in cfg.get("teachers", {}).items()}
    fe_entries = {n: m.frontend for n, m in cfg.models.items()}
    fe_entries |= {f"teacher.{n}": t.frontend for n, t in cfg.get("teachers", {}).items()}
    terms = tuple(LossTerm.from_config(n, t) for n, t in cfg.losses.items())
    return StepSpec(
        models=models,
        teachers=teachers,
        frontends=_frontend_fns(fe_entries, sample_rate),
        terms=terms,
        teacher_train_mode=bool(cfg.get("teacher_train_mode", False)),
        mixup_alpha=float(cfg.get("mixup_alpha", 0.0)),
    )


def init_variables(spec: StepSpec, rng: jax.Array, clip_samples: int) -> tuple[dict, dict]:
    """Initial params and batch_stats of every trainable model (`{name: ...}`).

    Jitted: un-jitted `init` dispatches (and compiles) every initialiser op on its own,
    which took ~50 s of setup on a loaded 2-core machine; one program takes a few seconds.
    """

    @jax.jit
    def init(rng):
        feats = spec.features(jnp.zeros((2, clip_samples), jnp.float32))
        params, stats = {}, {}
        for i, (name, module) in enumerate(spec.models.items()):
            v = module.init(jax.random.fold_in(rng, i), feats[name], train=False)
            params[name] = v["params"]
            stats[name] = v.get("batch_stats", {})
        return params, stats

    return init(rng)


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


def resolve_path(path: str, workdir: str) -> str:
    """Expands `{workdir}` / `{parent}` (the workdir's parent folder) in a config path."""
    return path.format(workdir=workdir, parent=os.path.dirname(os.path.abspath(workdir)))


# ---------------------------------------------------------------------------------------------
# Logging (process 0 only).


class Logger:
    """JSON lines + TensorBoard; no-ops on processes other than 0."""

    def __init__(self, workdir: str, enabled: bool):
        self.enabled = enabled
        if enabled:
            from tensorboardX import SummaryWriter

            os.makedirs(workdir, exist_ok=True)
            self.jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
            self.tb = SummaryWriter(os.path.join(workdir, "tb"))

    def write(self, step: int, values: Mapping[str, Any]) -> None:
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


# ---------------------------------------------------------------------------------------------
# Evaluation.


def evaluate(
    spec: StepSpec,
    eval_fn,
    params: Mapping[str, Any],
    batch_stats: Mapping[str, Any],
    source,
    *,
    clip_samples: int,
    batch_size: int,
    data_sharding: NamedSharding,
    metric: str = "accuracy",
) -> dict[str, dict[str, Any]]:
    """Metrics of every trainable model on a whole split: `{name: {metric, loss, ...}}`.

    For single-label data also the confusion matrix and per-class accuracy.
    """
    nproc, pidx = jax.process_count(), jax.process_index()
    logits: dict[str, list] = {n: [] for n in spec.models}
    labels, masks, label_masks = [], [], []
    for batch in pipeline.eval_batches(
        source, clip_samples=clip_samples, batch_size=batch_size // nproc,
        shard_index=pidx, shard_count=nproc,
    ):
        audio = jax.make_array_from_process_local_data(data_sharding, batch["audio"])
        out = eval_fn(params, batch_stats, audio)
        out = multihost_utils.process_allgather(out, tiled=True) if nproc > 1 else out
        for n in spec.models:
            logits[n].append(np.asarray(out[n]))
        lab, msk, lmsk = batch["labels"], batch["mask"], batch["label_mask"]
        if nproc > 1:
            lab, msk, lmsk = (np.asarray(multihost_utils.process_allgather(a, tiled=True))
                              for a in (lab, msk, lmsk))
        labels.append(lab)
        masks.append(msk)
        label_masks.append(lmsk)
    y, m, lm = np.concatenate(labels), np.concatenate(masks), np.concatenate(label_masks)
    metric_fn = getattr(metrics_lib, metric, None)
    if metric_fn is None:
        raise ValueError(f"eval_metric={metric!r}: no such function in kdjax.train.metrics")
    metric_kw = {"mask": m}
    if "label_mask" in inspect.signature(metric_fn).parameters:
        metric_kw["label_mask"] = lm
    result = {}
    for n in spec.models:
        z = np.concatenate(logits[n]).astype(np.float64)
        r: dict[str, Any] = {}
        r[metric] = float(metric_fn(z, y, **metric_kw))
        if not source.multi_label:
            zmax = z.max(-1, keepdims=True)
            logp = z - zmax - np.log(np.exp(z - zmax).sum(-1, keepdims=True))
            r["loss"] = float(-(y * logp).sum(-1)[m > 0].mean())
            cm = metrics_lib.confusion_matrix(z, y, m)
            r["confusion_matrix"] = cm.tolist()
            r["per_class_accuracy"] = [None if math.isnan(a) else float(a) for a in metrics_lib.per_class_accuracy(cm)]
            if metric != "accuracy":
                r["accuracy"] = metrics_lib.accuracy(z, y, m)
        result[n] = r
    return result


# ---------------------------------------------------------------------------------------------
# The loop.


def train_and_evaluate(cfg: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Trains `cfg` in `workdir` (resuming if possible); returns the result dict (also result.json).

    Raises:
      TrainingDivergedError: NaN/inf loss (the last good checkpoint is kept).
      Preempted: SIGTERM received; a checkpoint was saved.
      DatasetNotFoundError, AudioError, ValueError: bad data or config (one-line messages).
    """
    workdir = os.path.abspath(workdir)
    is_main = jax.process_index() == 0
    t_setup = time.time()

    # Data.
    d = cfg.data
    train_src = data_source(d, d.train_split)
    val_src = data_source(d, d.eval_split) if d.get("eval_split") else None
    test_src = data_source(d, d.test_split) if d.get("test_split") else None
    sr, num_classes = train_src.sample_rate, train_src.num_classes
    clip_samples = int(round(d.clip_seconds * sr))

    nproc, ndev = jax.process_count(), jax.device_count()
    if cfg.batch_size % ndev:
        raise ValueError(f"batch_size={cfg.batch_size} must be divisible by the {ndev} devices")
    # Auto axis: XLA propagates the batch sharding (jax 0.10 defaults to Explicit sharding types).
    mesh = jax.make_mesh((ndev,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    repl, data_sh = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    # Data shards: by default one per process. `data.num_shards=K` (a multiple of the process
    # count) makes every process read K/nproc consecutive shards and concatenate their batches,
    # so the global batches (and the trained parameters) are the same on any process count
    # dividing K, e.g. a 1-process run reproduces a 2-process one (tests/test_distributed.py).
    num_shards = int(d.get("num_shards", 0) or nproc)
    if num_shards % nproc:
        raise ValueError(f"data.num_shards={num_shards} must be a multiple of the {nproc} processes")
    per_proc = num_shards // nproc
    train_ds = pipeline.train_dataset(
        train_src, clip_samples=clip_samples, batch_size=cfg.batch_size // nproc,
        seed=cfg.seed, crop=d.get("train_crop", "random"),
        shard_index=list(range(jax.process_index() * per_proc, (jax.process_index() + 1) * per_proc)),
        shard_count=num_shards,
        read_threads=d.get("read_threads", 1),
    )
    train_iter = iter(train_ds)

    # Models, teachers, state.
    spec = build_spec(cfg, num_classes, sr)
    rng = jax.random.key(cfg.seed)
    params, batch_stats = init_variables(spec, jax.random.fold_in(rng, 1), clip_samples)
    tx, sched = make_optimizer(cfg)
    create = jax.jit(lambda p, s: TrainState.create(params=p, batch_stats=s, tx=tx))  # one program, not one per leaf
    state = jax.device_put(create(params, batch_stats), repl)
    teachers = {}
    for n, t in cfg.get("teachers", {}).items():
        path = resolve_path(t.checkpoint, workdir)
        teachers[n] = load_best_variables(path, t.get("checkpoint_model", n))
    teachers = jax.device_put(teachers, repl)
    param_counts = {n: models_lib.count_params(p) for n, p in state.params.items()}
    teacher_counts = {n: models_lib.count_params(v["params"]) for n, v in teachers.items()}

    def snapshot(n: str, metric_value, step) -> dict[str, Any]:
        # A copy: the train step donates (deletes) the state's buffers. metric/step are put
        # replicated on the global mesh: orbax cannot save process-local arrays multi-process.
        return jax.tree.map(jnp.copy, {
            "params": state.params[n], "batch_stats": state.batch_stats[n]}) | {
            "metric": jax.device_put(np.float32(metric_value), repl),
            "step": jax.device_put(np.int32(step), repl)}

    best = {n: snapshot(n, -jnp.inf, -1) for n in spec.models}
    ckpt = Checkpointer(os.path.join(workdir, "ckpt"), max_to_keep=cfg.get("keep_checkpoints", 2))
    meta: dict[str, Any] = {"train_time_s": 0.0}
    start = ckpt.latest_step()
    if start is not None:
        s_tree, best, meta = ckpt.restore(start, state.to_checkpoint(), best)
        state = state.from_checkpoint(s_tree)
        train_iter.set_state(meta["data_iterator"])
        if is_main:
            print(f"resumed from {ckpt.directory}/{start}")
    start = int(state.step)

    step_fn = jit_train_step(spec)
    eval_fn = jax.jit(lambda p, b, a: eval_logits(p, b, a, spec=spec))
    log = Logger(workdir, is_main)
    metric = cfg.get("eval_metric", "accuracy")
    eval_kw = dict(clip_samples=clip_samples, batch_size=cfg.get("eval_batch_size", cfg.batch_size),
                   data_sharding=data_sh, metric=metric)

    term = {"flag": False}
    prev_handler = signal.getsignal(signal.SIGTERM)
    if hasattr(signal, "SIGTERM"):
        try:
            signal.signal(signal.SIGTERM, lambda *_: term.update(flag=True))
        except ValueError:  # not the main thread
            pass

    def meta_now(step: int, elapsed: float) -> dict[str, Any]:
        return {"data_iterator": train_iter.get_state(), "train_time_s": elapsed, "step": step}

    def check(step: int, m: Mapping[str, Any]) -> dict[str, float]:
        m = jax.device_get(m)
        if not np.isfinite(m["loss"]):
            ckpt.wait()
            last = ckpt.latest_step()
            bad = {k: float(v) for k, v in m.items() if k.startswith("loss")}
            raise TrainingDivergedError(
                f"loss is {float(m['loss'])} at step {step} (terms {bad}); training stopped, "
                f"last good checkpoint: {ckpt.directory}/{last}"
            )
        return m

    def run_eval(step: int):
        nonlocal best
        res = evaluate(spec, eval_fn, state.params, state.batch_stats, val_src, **eval_kw)
        vals = {}
        for n, r in res.items():
            vals[f"val/{n}/{metric}"] = r[metric]
            if "loss" in r:
                vals[f"val/{n}/loss"] = r["loss"]
            if r[metric] > float(best[n]["metric"]):
                best[n] = snapshot(n, r[metric], step)
        log.write(step, vals)
        return vals

    from tqdm import tqdm

    bar = tqdm(total=cfg.num_steps, initial=start, disable=not is_main or cfg.get("quiet", False),
               desc=os.path.basename(workdir), unit="step", dynamic_ncols=True, mininterval=2.0)
    elapsed = float(meta.get("train_time_s", 0.0))
    t0 = time.time()
    setup_s = t0 - t_setup
    pending = None
    step = start
    try:
        while step < cfg.num_steps:
            batch = next(train_iter)
            gbatch = {k: jax.make_array_from_process_local_data(data_sh, v) for k, v in batch.items()}
            state, m = step_fn(state, teachers, gbatch, rng)
            step += 1
            # Check the previous step's metrics while this one runs (one step of lag keeps
            # the host ahead of the device); every step is checked before any save.
            if pending is not None:
                _log_train(log, bar, *pending, check, sched, cfg)
            pending = (step, m)
            do_eval = val_src is not None and (step % cfg.eval_every == 0 or step == cfg.num_steps)
            do_ckpt = step % cfg.checkpoint_every == 0 or step == cfg.num_steps or term["flag"]
            if do_eval or do_ckpt:
                _log_train(log, bar, *pending, check, sched, cfg)
                pending = None
            if do_eval:
                bar.set_postfix_str(" ".join(f"{k.split('/')[1]}={v:.3f}" for k, v in run_eval(step).items() if k.endswith(metric)))
            if do_ckpt:
                ckpt.save(step, state.to_checkpoint(), best, meta_now(step, elapsed + time.time() - t0))
            if term["flag"]:
                ckpt.wait()
                raise Preempted(f"SIGTERM: saved checkpoint {ckpt.directory}/{step}; rerun to resume")
        if pending is not None:
            _log_train(log, bar, *pending, check, sched, cfg)
        ckpt.wait()
    except BaseException:
        ckpt.wait()
        ckpt.close()
        raise
    finally:
        bar.close()
        if hasattr(signal, "SIGTERM"):
            try:
                signal.signal(signal.SIGTERM, prev_handler)
            except ValueError:
                pass
    elapsed += time.time() - t0

    # Final: best-by-validation models (or last, without a validation split) on the test split.
    result: dict[str, Any] = {"workdir": workdir, "steps": cfg.num_steps, "train_time_s": elapsed,
                              "setup_time_s": setup_s, "params": param_counts,
                              "teacher_params": teacher_counts, "models": {}}
    if val_src is None:
        best = {n: snapshot(n, jnp.nan, cfg.num_steps) for n in spec.models}
    final_params = {n: best[n]["params"] for n in spec.models}
    final_stats = {n: best[n]["batch_stats"] for n in spec.models}
    split_src = {"validation": val_src, "test": test_src}
    for split, src in split_src.items():
        if src is None:
            continue
        res = evaluate(spec, eval_fn, final_params, final_stats, src, **eval_kw)
        for n, r in res.items():
            result["models"].setdefault(n, {"best_step": int(best[n]["step"])})[split] = r
    ckpt.close()
    if is_main:
        with open(os.path.join(workdir, "result.json"), "w") as f:
            json.dump(result, f, indent=1)
        log.write(cfg.num_steps, {f"test/{n}/{metric}": r["test"][metric]
                                  for n, r in result["models"].items() if "test" in r})
    log.close()
    return result


def _log_train(log, bar, step, m, check, sched, cfg):
    vals = check(step, m)
    bar.update(step - bar.n)
    if step % cfg.get("log_every", 50) == 0 or step == cfg.num_steps:
        vals = {k: v for k, v in vals.items()} | {"lr": float(sched(step - 1))}
        log.write(step, {f"train/{k}": v for k, v in vals.items()})
        bar.set_postfix_str(f"loss={vals['loss']:.4f}", refresh=False)
