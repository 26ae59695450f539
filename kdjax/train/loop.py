"""The training loop: data -> jitted step on a ("data",) mesh -> eval -> checkpoints -> result.

`train_and_evaluate(cfg, workdir)` trains the config's trainable models
(`cfg.models`) with frozen teachers (`cfg.teachers`), resumes from the latest
checkpoint in `workdir`, keeps per model the parameters with the best
validation metric, and finally evaluates those on the test split. It writes:
  workdir/metrics.jsonl   one JSON object per logged train step / evaluation
  workdir/tb/             TensorBoard event files
  workdir/ckpt/           orbax checkpoints (see kdjax.train.checkpoint)
  workdir/result.json     the final test metrics, parameter counts, training time
  workdir/logits_<split>.npz   the selected models' logits `[N, C]` per split (source order)
                          and the labels, for ensembles and paired per-clip comparisons
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

from kdjax import models as models_lib
from kdjax.data import data_root, get_source, pipeline
from kdjax.data.join import JoinedSource, load_joined_arrays
from kdjax.train import metrics as metrics_lib
from kdjax.train.checkpoint import Checkpointer, load_best_variables
from kdjax.train.program import Program, _set_path, build_program, resolve
from kdjax.train.state import TrainState
from kdjax.train.step import eval_logits, jit_train_step


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


def build_spec(cfg: ml_collections.ConfigDict, num_classes: int, sample_rate: int,
               *, multi_label: bool = False) -> Program:
    """The config's Program (`kdjax.train.program.build_program`)."""
    return build_program(cfg, num_classes, sample_rate, multi_label=multi_label)


def example_batch(source, clip_samples: int, n: int = 2) -> dict[str, np.ndarray]:
    """`n` copies of the source's first element, fitted to `clip_samples`, for shape inference."""
    ex = pipeline._crop(clip_samples, "start")(source[0], np.random.default_rng(0))
    return {k: np.stack([np.asarray(ex[k])] * n) for k in ex}


def init_variables(spec: Program, rng: jax.Array, clip_samples: int,
                   teachers: Mapping[str, Any] | None = None,
                   batch: Mapping[str, Any] | None = None) -> tuple[dict, dict]:
    """Initial params and batch_stats of every trainable module (`{name: ...}`).

    Modules are initialised in dependency order on an example batch (zeros `[2, clip_samples]`
    audio unless `batch` is given), so a module reading another's outputs (a training-only head
    on a student's frames) gets inputs of the right shape; frozen modules it depends on need
    their `teachers` variables.

    Jitted: un-jitted `init` dispatches (and compiles) every initialiser op on its own,
    which took ~50 s of setup on a loaded 2-core machine; one program takes a few seconds.

    A module with `pretrained` (`models.<name>.pretrained`) then gets its checkpoint's
    parameters: `load_pretrained(path, initial params)` runs after the jitted init (a module
    reading its outputs was initialised on its initial outputs; Flax initialisers use only
    their shapes, which the checkpoint keeps).

    Raises:
      KeyError: a trainable module reads a frozen module whose variables were not given.
    """
    if batch is None:
        batch = {"audio": np.zeros((2, clip_samples), np.float32)}
    teachers = dict(teachers or {})
    needs = {n.path for n in spec.subgraph(tuple(spec.models))}
    missing = [n.name for n in spec.nodes if not n.trainable and n.path in needs and n.name not in teachers]
    if missing:
        raise KeyError(f"init: trainable modules read the frozen teachers {missing}, whose variables are missing")

    @jax.jit
    def init(rng, teachers):
        ns = {"batch": dict(batch), "features": spec.features(batch.get("audio"), batch)}
        params, stats = {}, {}
        for i, node in enumerate(spec.nodes):
            if node.path not in needs:
                continue
            x = resolve(ns, node.input)
            if node.trainable:
                v = node.module.init(jax.random.fold_in(rng, i), x, train=False)
                params[node.name] = v["params"]
                stats[node.name] = v.get("batch_stats", {})
                v = {"params": params[node.name], "batch_stats": stats[node.name]}
            else:
                v = teachers[node.name]
            logits, feats = node.module.apply(v, x, train=False)
            _set_path(ns, node.path, {"logits": logits, "feats": feats})
        return params, stats

    params, stats = init(rng, teachers)
    for node in spec.nodes:
        if node.trainable and node.pretrained:
            params[node.name] = node.load_pretrained(node.pretrained, params[node.name])
    return params, stats


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
    """Expands `{workdir}` / `{parent}` (the workdir's parent folder) in a config path
    (other braces, e.g. `{split}`, are left for later)."""
    return str(path).replace("{workdir}", workdir).replace("{parent}", os.path.dirname(os.path.abspath(workdir)))


def split_sources(cfg: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """The train/validation/test sources of a config (None where the split is not set).

    `data.train_source` ({name, kw}, optional) reads the train split from another source
    (e.g. `synthetic` shards of an invert stage) while validation/test stay on `data`.
    `data.join` ({key: path}) joins per-clip arrays by clip index to every split
    (kdjax.data.join).

    Raises:
      ValueError: joined arrays with in-step mixup or random crops (they would silently no
        longer match the audio).
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
    out = {}
    for role, split in (("train", d.train_split), ("validation", d.get("eval_split")),
                        ("test", d.get("test_split"))):
        if not split:
            out[role] = None
            continue
        ts = d.get("train_source")
        if role == "train" and ts and ts.get("name"):
            kw = {k: resolve_path(v, workdir) if isinstance(v, str) else v for k, v in dict(ts.get("kw", {})).items()}
            src = get_source(ts.name, split, **kw)
        else:
            src = data_source(d, split)
        if join:
            src = JoinedSource(src, load_joined_arrays(join, split, len(src)))
        out[role] = src
    return out


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
    spec: Program,
    eval_fn,
    params: Mapping[str, Any],
    batch_stats: Mapping[str, Any],
    source,
    *,
    clip_samples: int,
    batch_size: int,
    data_sharding: NamedSharding,
    metric: str = "accuracy",
    logits_out: dict[str, np.ndarray] | None = None,
) -> dict[str, dict[str, Any]]:
    """Metrics of every deployed model on a whole split: `{name: {metric, loss, ...}}`.

    Multi-label data: the metric is computed on `sigmoid(logits)` (probabilities). For
    single-label data also the confusion matrix and per-class accuracy. If `logits_out` is
    a dict, it receives each model's logits `[N, C]` (in source order, padding removed) and
    `"labels"` `[N, C]`.
    """
    nproc, pidx = jax.process_count(), jax.process_index()
    logits: dict[str, list] = {n: [] for n in spec.deployed}
    labels, masks, label_masks = [], [], []
    for batch in pipeline.eval_batches(
        source, clip_samples=clip_samples, batch_size=batch_size // nproc,
        shard_index=pidx, shard_count=nproc,
    ):
        inputs = {k: jax.make_array_from_process_local_data(data_sharding, v) for k, v in batch.items()
                  if k not in ("labels", "label_mask", "mask", "index")}
        out = eval_fn(params, batch_stats, inputs)
        out = multihost_utils.process_allgather(out, tiled=True) if nproc > 1 else out
        for n in spec.deployed:
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
    for n in spec.deployed:
        z = np.concatenate(logits[n]).astype(np.float64)
        r: dict[str, Any] = {}
        # Multi-label metrics take probabilities (DCASE micro-AUPRC thresholds scores in [0, 1]);
        # rank-based metrics (mAP, ROC-AUC) are unchanged by the sigmoid. Logits are saved as is.
        scores = 1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0))) if source.multi_label else z
        r[metric] = float(metric_fn(scores, y, **metric_kw))
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
        if logits_out is not None:
            logits_out[n] = z[m > 0].astype(np.float32)
    if logits_out is not None:
        logits_out["labels"] = y[m > 0].astype(np.float32)
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
    srcs = split_sources(cfg, workdir)
    train_src, val_src, test_src = srcs["train"], srcs["validation"], srcs["test"]
    sr, num_classes = train_src.sample_rate, train_src.num_classes
    for role, src in (("validation", val_src), ("test", test_src)):
        if src is not None and (src.sample_rate, src.num_classes) != (sr, num_classes):
            raise ValueError(f"data: the {role} split is {src.sample_rate} Hz / {src.num_classes} classes, "
                             f"the train split {sr} Hz / {num_classes} classes")
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
    spec = build_spec(cfg, num_classes, sr, multi_label=bool(getattr(train_src, "multi_label", False)))
    rng = jax.random.key(cfg.seed)
    teachers = load_teachers(cfg, workdir)
    params, batch_stats = init_variables(spec, jax.random.fold_in(rng, 1), clip_samples, teachers,
                                         example_batch(train_src, clip_samples))
    tx, sched = make_optimizer(cfg)
    create = jax.jit(lambda p, s: TrainState.create(params=p, batch_stats=s, tx=tx))  # one program, not one per leaf
    state = jax.device_put(create(params, batch_stats), repl)
    teachers = jax.device_put(teachers, repl)
    # Deployed models only; training-only modules (deploy=False) are reported apart.
    param_counts = {n: models_lib.count_params(state.params[n]) for n in spec.deployed}
    train_only_counts = {n: models_lib.count_params(p) for n, p in state.params.items() if n not in spec.deployed}
    teacher_counts = {n: models_lib.count_params(v["params"]) for n, v in teachers.items()}

    def snapshot(n: str, metric_value, step) -> dict[str, Any]:
        # A copy: the train step donates (deletes) the state's buffers. metric/step are put
        # replicated on the global mesh: orbax cannot save process-local arrays multi-process.
        return jax.tree.map(jnp.copy, {
            "params": state.params[n], "batch_stats": state.batch_stats[n]}) | {
            "metric": jax.device_put(np.float32(metric_value), repl),
            "step": jax.device_put(np.int32(step), repl)}

    # Without a validation split the "best" model is the last one: it is refreshed at every
    # checkpoint, so a teacher checkpoint never holds the untrained initial parameters.
    best = {n: snapshot(n, -jnp.inf, -1) for n in spec.deployed}
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
    _eval = jax.jit(lambda p, b, a, t: eval_logits(p, b, a, spec=spec, teachers=t))
    eval_fn = lambda p, b, a: _eval(p, b, a, teachers)  # noqa: E731  (teachers as an argument, not a constant)
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
                if val_src is None:
                    best = {n: snapshot(n, jnp.nan, step) for n in spec.deployed}
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
    if term["flag"]:
        # SIGTERM after the last step's check (e.g. during the final checkpoint wait): the
        # final checkpoint is saved; stop instead of going on (a staged run would otherwise
        # start its next run with the default handler restored and the signal lost).
        ckpt.close()
        raise Preempted(f"SIGTERM: saved checkpoint {ckpt.directory}/{step}; rerun to resume")
    elapsed += time.time() - t0

    # Final: best-by-validation models (or last, without a validation split) on the test split.
    result: dict[str, Any] = {"workdir": workdir, "steps": cfg.num_steps, "train_time_s": elapsed,
                              "setup_time_s": setup_s, "params": param_counts,
                              "train_only_params": train_only_counts,
                              "teacher_params": teacher_counts, "models": {}}
    final_params = {n: best[n]["params"] for n in spec.deployed}
    final_stats = {n: best[n]["batch_stats"] for n in spec.deployed}
    split_src = {"validation": val_src, "test": test_src}
    for split, src in split_src.items():
        if src is None:
            continue
        logits_out: dict[str, np.ndarray] = {}
        res = evaluate(spec, eval_fn, final_params, final_stats, src, **eval_kw, logits_out=logits_out)
        if is_main:  # for ensembles and per-clip comparisons of runs (e.g. recipes' results tables)
            np.savez(os.path.join(workdir, f"logits_{split}.npz"), **logits_out)
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


def load_teachers(cfg: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Every frozen module's variables from its checkpoint (`teachers.<n>.checkpoint`, a kdjax
    workdir; `{workdir}`/`{parent}` expanded), as host arrays.

    Raises:
      FileNotFoundError / KeyError / ValueError: see `load_best_variables` (missing, wrong
        model name, never evaluated).
    """
    out = {}
    for n, t in cfg.get("teachers", {}).items():
        if not t.get("checkpoint"):
            raise ValueError(f"teachers.{n}.checkpoint: expected the workdir of the run that trained it")
        out[n] = load_best_variables(resolve_path(t.checkpoint, workdir), t.get("checkpoint_model", n))
    return out


def _log_train(log, bar, step, m, check, sched, cfg):
    vals = check(step, m)
    bar.update(step - bar.n)
    if step % cfg.get("log_every", 50) == 0 or step == cfg.num_steps:
        vals = {k: v for k, v in vals.items()} | {"lr": float(sched(step - 1))}
        log.write(step, {f"train/{k}": v for k, v in vals.items()})
        bar.set_postfix_str(f"loss={vals['loss']:.4f}", refresh=False)
