"""The train loop: restore -> train (jitted step on a ("data",) mesh, validation, checkpoints) ->
final evaluation -> result.

`train_and_evaluate(cfg, workdir)` trains the config's trainable models (`cfg.models`) with
frozen teachers (`cfg.teachers`), resumes from the latest checkpoint in `workdir`, keeps per
model the parameters with the best validation metric, and finally evaluates those on the test
split. It is four steps, one function each:
  prepare           the mesh, the data iterator, the initial state, the jitted steps, the logger
  restore           the latest checkpoint, if any (state, best models, data iterator, time)
  train             the steps, with the NaN stop, validation, checkpoints and SIGTERM handling
  final_evaluation  the selected models on the validation and test splits
What the stages share (sources, Program, teachers, optimiser, logger, result.json) is
kdjax.train.setup. It writes:
  workdir/metrics.jsonl   one JSON object per logged train step / evaluation
  workdir/tb/             TensorBoard event files
  workdir/ckpt/           orbax checkpoints (see kdjax.train.checkpoint)
  workdir/result.json     the final test metrics, parameter counts, training time
  workdir/logits_<split>.npz   the selected models' logits `[N, C]` per split (source order)
                          and the labels, for ensembles and paired per-clip comparisons
Only process 0 writes logs and result files; checkpoints are saved collectively.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from kdjax import models as models_lib
from kdjax.data import pipeline
from kdjax.train.checkpoint import Checkpointer
from kdjax.train.compile_cache import CacheEvents
from kdjax.train.convergence import (
    early_stopping_config,
    plateau_config,
    plateau_lr_scale,
    plateau_update,
    plateau_value,
    stopping_point,
)
from kdjax.train.evaluate import evaluate
from kdjax.train.forward import init_variables
from kdjax.train.setup import (
    Logger,
    StageContext,
    check_finite,
    example_batch,
    make_optimizer,
    write_result,
)
from kdjax.train.state import TrainState
from kdjax.train.step import eval_logits, jit_train_step


class Preempted(SystemExit):
    """SIGTERM received (e.g. TPU VM preemption); a checkpoint was saved first."""


@dataclasses.dataclass
class TrainRun:
    """One train run between `prepare` and `final_evaluation` (mutated by `restore` and `train`).

    Attributes:
      ctx: the stage context (sources, Program, teachers' host variables).
      repl: the replicated sharding; data_sharding: the batch sharding on "data".
      train_iter: the grain iterator of global-batch shards (its state is checkpointed).
      state: the TrainState (replicated).
      teachers: the frozen variables (replicated).
      best: per deployed model, a snapshot `{params, batch_stats, metric, step}` of its best
        validation step (the last checkpointed step without a validation split).
      ckpt: the checkpointer of `<workdir>/ckpt`.
      step_fn: the jitted train step; eval_fn: `(params, batch_stats, inputs) -> logits`.
      sched: the learning-rate schedule (logged).
      log: metrics.jsonl + TensorBoard.
      rng: the run's key (`cfg.seed`), folded with the step inside the train step.
      counts: deployed / training-only / teacher parameter counts for result.json.
      train_time_s: training time so far, over resumptions (s).
      setup_time_s: time from the start of `train_and_evaluate` to the first step (s).
      val_steps, val_history: the validation steps and, per deployed model, its validation
        metric at each (checkpointed, for early stopping and `converged` after a resume).
      stopped: early stopping stopped the run (checkpointed: a resumed run does not go on).
      last_step: the last trained step.
      first_step_s: wall time of this process's first step, compile included (s).
      compile_cache_hit: whether that compile hit the persistent cache (None: no lookup).
    """

    ctx: StageContext
    repl: NamedSharding
    data_sharding: NamedSharding
    train_iter: Any
    state: TrainState
    teachers: Mapping[str, Any]
    best: dict[str, Any]
    ckpt: Checkpointer
    step_fn: Callable[..., Any]
    eval_fn: Callable[..., Any]
    sched: Callable[[Any], Any]
    log: Logger
    rng: jax.Array
    counts: dict[str, dict[str, int]]
    train_time_s: float = 0.0
    setup_time_s: float = 0.0
    val_steps: list[int] = dataclasses.field(default_factory=list)
    val_history: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    stopped: bool = False
    last_step: int = 0
    first_step_s: float | None = None
    compile_cache_hit: bool | None = None

    @property
    def metric(self) -> str:
        """The validation metric that selects the best models (`cfg.eval_metric`)."""
        return self.ctx.cfg.get("eval_metric", "accuracy")

    def snapshot(self, name: str, metric_value: Any, step: int) -> dict[str, Any]:
        """A copy of model `name`'s current variables with its metric and step (a `best` entry).

        A copy: the train step donates (deletes) the state's buffers. metric/step are put
        replicated on the global mesh: orbax cannot save process-local arrays multi-process.
        """
        return jax.tree.map(jnp.copy, {
            "params": self.state.params[name], "batch_stats": self.state.batch_stats[name]}) | {
            "metric": jax.device_put(np.float32(metric_value), self.repl),
            "step": jax.device_put(np.int32(step), self.repl)}

    def evaluate(self, source: Any, params: Mapping[str, Any], batch_stats: Mapping[str, Any],
                 logits_out: dict[str, np.ndarray] | None = None) -> dict[str, dict[str, Any]]:
        """`kdjax.train.evaluate.evaluate` of the deployed models on `source`."""
        cfg = self.ctx.cfg
        return evaluate(self.ctx.program, self.eval_fn, params, batch_stats, source,
                        clip_samples=self.ctx.clip_samples,
                        batch_size=cfg.get("eval_batch_size", cfg.batch_size),
                        data_sharding=self.data_sharding, metric=self.metric, logits_out=logits_out)


def prepare(ctx: StageContext) -> TrainRun:
    """The mesh, the train data iterator, the initial TrainState, the jitted steps, the logger.

    Data shards: by default one per process. `data.num_shards=K` (a multiple of the process
    count) makes every process read K/nproc consecutive shards and concatenate their batches,
    so the global batches (and the trained parameters) are the same on any process count
    dividing K, e.g. a 1-process run reproduces a 2-process one (tests/test_distributed.py).

    Raises:
      ValueError: `batch_size` not divisible by the device count, or `data.num_shards` not a
        multiple of the process count.
    """
    cfg, program = ctx.cfg, ctx.program
    nproc, ndev = jax.process_count(), jax.device_count()
    if cfg.batch_size % ndev:
        raise ValueError(f"batch_size={cfg.batch_size} must be divisible by the {ndev} devices")
    # Auto axis: XLA propagates the batch sharding (jax 0.10 defaults to Explicit sharding types).
    mesh = jax.make_mesh((ndev,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    repl, data_sh = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    num_shards = int(cfg.data.get("num_shards", 0) or nproc)
    if num_shards % nproc:
        raise ValueError(f"data.num_shards={num_shards} must be a multiple of the {nproc} processes")
    per_proc = num_shards // nproc
    train_src = ctx.sources["train"]
    train_ds = pipeline.train_dataset(
        train_src, clip_samples=ctx.clip_samples, batch_size=cfg.batch_size // nproc,
        seed=cfg.seed, crop=cfg.data.get("train_crop", "random"),
        shard_index=list(range(jax.process_index() * per_proc, (jax.process_index() + 1) * per_proc)),
        shard_count=num_shards,
        read_threads=cfg.data.get("read_threads", 1),
    )

    rng = jax.random.key(cfg.seed)
    params, batch_stats = init_variables(program, jax.random.fold_in(rng, 1), ctx.clip_samples, ctx.teachers,
                                         example_batch(train_src, ctx.clip_samples))
    tx, sched = make_optimizer(cfg)
    create = jax.jit(lambda p, s: TrainState.create(params=p, batch_stats=s, tx=tx))  # one program, not one per leaf
    state = jax.device_put(create(params, batch_stats), repl)
    teachers = jax.device_put(dict(ctx.teachers), repl)
    # Deployed models only; training-only modules (deploy=False) are reported apart.
    counts = {
        "params": {n: models_lib.count_params(state.params[n]) for n in program.deployed},
        "train_only_params": {n: models_lib.count_params(p) for n, p in state.params.items()
                              if n not in program.deployed},
        "teacher_params": {n: models_lib.count_params(v["params"]) for n, v in teachers.items()},
    }
    _eval = jax.jit(lambda p, b, a, t: eval_logits(p, b, a, program=program, teachers=t))
    run = TrainRun(
        ctx=ctx, repl=repl, data_sharding=data_sh, train_iter=iter(train_ds), state=state,
        teachers=teachers, best={},
        ckpt=Checkpointer(os.path.join(ctx.workdir, "ckpt"), max_to_keep=cfg.get("keep_checkpoints", 2)),
        step_fn=jit_train_step(program),
        eval_fn=lambda p, b, a: _eval(p, b, a, teachers),  # teachers as an argument, not a constant
        sched=sched, log=Logger(ctx.workdir, jax.process_index() == 0), rng=rng, counts=counts,
    )
    # Without a validation split the "best" model is the last one: it is refreshed at every
    # checkpoint, so a teacher checkpoint never holds the untrained initial parameters.
    run.best = {n: run.snapshot(n, -jnp.inf, -1) for n in program.deployed}
    return run


def restore(run: TrainRun) -> int:
    """Restores the latest checkpoint of the run, if any (train state, best models, data
    iterator, training time); returns the step to start from (0 without a checkpoint)."""
    start = run.ckpt.latest_step()
    if start is not None:
        s_tree, run.best, meta = run.ckpt.restore(start, run.state.to_checkpoint(), run.best)
        run.state = run.state.from_checkpoint(s_tree)
        run.train_iter.set_state(meta["data_iterator"])
        run.train_time_s = float(meta.get("train_time_s", 0.0))
        run.val_steps = list(meta.get("val_steps", []))
        run.val_history = {n: list(v) for n, v in meta.get("val_history", {}).items()}
        run.stopped = bool(meta.get("stopped_early", False))
        if jax.process_index() == 0:
            print(f"resumed from {run.ckpt.directory}/{start}")
    return int(run.state.step)


@contextlib.contextmanager
def sigterm_flag() -> Iterator[dict[str, bool]]:
    """Within the block, SIGTERM sets `flag["set"] = True` instead of killing the process (the
    loop then saves a checkpoint and stops); the previous handler is restored on exit. Outside
    the main thread (where handlers cannot be installed) the flag never sets."""
    flag = {"set": False}
    prev = signal.getsignal(signal.SIGTERM)
    installed = False
    try:
        signal.signal(signal.SIGTERM, lambda *_: flag.update(set=True))
        installed = True
    except ValueError:  # not the main thread
        pass
    try:
        yield flag
    finally:
        if installed:
            signal.signal(signal.SIGTERM, prev)


def train(run: TrainRun, start: int, t_setup: float) -> None:
    """Runs steps `start + 1 .. cfg.num_steps`: validation every `eval_every` steps (updating
    `run.best`), a checkpoint every `checkpoint_every` steps and at the end.

    `cfg.num_steps` is a ceiling: with `cfg.early_stopping` the run stops (checkpointed) at the
    first validation after which every deployed model has gone `patience` validations without
    improving (kdjax.train.convergence.stopping_point); with `cfg.reduce_on_plateau` each
    validation advances optax's plateau rule with 1 - the mean validation metric.

    Every step's metrics are checked for NaN/inf (one step late, so the host stays ahead of the
    device, and always before a save). `run.train_time_s` is updated.

    Raises:
      TrainingDivergedError: a NaN/inf loss (the last good checkpoint is kept).
      Preempted: SIGTERM; a checkpoint of the current step was saved first.
    """
    from tqdm import tqdm

    cfg, program, ckpt = run.ctx.cfg, run.ctx.program, run.ckpt
    metric = run.metric
    val_src = run.ctx.sources["validation"]
    es, plateau = early_stopping_config(cfg), plateau_config(cfg)
    bar = tqdm(total=cfg.num_steps, initial=start, disable=jax.process_index() != 0 or cfg.get("quiet", False),
               desc=os.path.basename(run.ctx.workdir), unit="step", dynamic_ncols=True, mininterval=2.0)
    elapsed = run.train_time_s
    t0 = time.time()
    run.setup_time_s = t0 - t_setup

    def log_train(step: int, m: Mapping[str, Any]) -> None:
        def kept() -> str:
            ckpt.wait()
            return f"last good checkpoint: {ckpt.directory}/{ckpt.latest_step()}"

        vals = check_finite(m, what="loss", at=f"step {step}", kept=kept)
        bar.update(step - bar.n)
        if step % cfg.get("log_every", 50) == 0 or step == cfg.num_steps:
            scale = plateau_lr_scale(run.state.opt_state)  # None without reduce_on_plateau
            lr = float(run.sched(step - 1))
            vals = dict(vals) | {"lr": lr if scale is None else lr * scale}
            run.log.write(step, {f"train/{k}": v for k, v in vals.items()})
            bar.set_postfix_str(f"loss={vals['loss']:.4f}", refresh=False)

    def validate(step: int) -> dict[str, float]:
        res = run.evaluate(val_src, run.state.params, run.state.batch_stats)
        vals = {}
        for n, r in res.items():
            vals[f"val/{n}/{metric}"] = r[metric]
            if "loss" in r:
                vals[f"val/{n}/loss"] = r["loss"]
            if improves(r[metric], run.best[n]["metric"]):
                run.best[n] = run.snapshot(n, r[metric], step)
            run.val_history.setdefault(n, []).append(float(r[metric]))
        run.val_steps.append(step)
        if plateau is not None:  # optax's rule minimises a value >= 0: 1 - the mean metric
            value = plateau_value({n: r[metric] for n, r in res.items()})
            opt_state = plateau_update(run.state.opt_state, value, **plateau)
            run.state = run.state.replace(opt_state=opt_state)
            vals["lr_scale"] = plateau_lr_scale(run.state.opt_state)
        if es is not None:
            run.stopped = all(stopping_point(h, es["patience"], es["min_delta"])[1]
                              for h in run.val_history.values())
        run.log.write(step, vals)
        return vals

    def preempted(step: int) -> Preempted:
        return Preempted(f"SIGTERM: saved checkpoint {ckpt.directory}/{step}; rerun to resume")

    pending = None
    step = start
    with sigterm_flag() as term:
        try:
            while step < cfg.num_steps and not run.stopped:
                batch = next(run.train_iter)
                gbatch = {k: jax.make_array_from_process_local_data(run.data_sharding, v) for k, v in batch.items()}
                if run.first_step_s is None:  # this process's first step: its compile
                    t_first, snap = time.time(), CacheEvents.snapshot()
                    out = run.step_fn(run.state, run.teachers, gbatch, run.rng)
                    run.state, m = jax.block_until_ready(out)
                    run.first_step_s = time.time() - t_first
                    run.compile_cache_hit = CacheEvents.hit_since(snap)
                else:
                    run.state, m = run.step_fn(run.state, run.teachers, gbatch, run.rng)
                step += 1
                # Check the previous step's metrics while this one runs (one step of lag keeps
                # the host ahead of the device); every step is checked before any save.
                if pending is not None:
                    log_train(*pending)
                pending = (step, m)
                do_eval = val_src is not None and (step % cfg.eval_every == 0 or step == cfg.num_steps)
                do_ckpt = step % cfg.checkpoint_every == 0 or step == cfg.num_steps or term["set"]
                if do_eval or do_ckpt:
                    log_train(*pending)
                    pending = None
                if do_eval:
                    bar.set_postfix_str(" ".join(f"{k.split('/')[1]}={v:.3f}" for k, v in validate(step).items()
                                                 if k.endswith(metric)))
                    if run.stopped:
                        do_ckpt = True
                        if jax.process_index() == 0:
                            print(f"early stopping at step {step}: no {metric} improvement in "
                                  f"the last {es['patience']} validations", flush=True)
                if do_ckpt:
                    if val_src is None:
                        run.best = {n: run.snapshot(n, jnp.nan, step) for n in program.deployed}
                    meta = {"data_iterator": run.train_iter.get_state(),
                            "train_time_s": elapsed + time.time() - t0, "step": step,
                            "val_steps": run.val_steps, "val_history": run.val_history,
                            "stopped_early": run.stopped}
                    ckpt.save(step, run.state.to_checkpoint(), run.best, meta)
                if term["set"]:
                    ckpt.wait()
                    raise preempted(step)
            if pending is not None:
                log_train(*pending)
            ckpt.wait()
        except BaseException:
            ckpt.wait()
            ckpt.close()
            raise
        finally:
            bar.close()
    if term["set"]:
        # SIGTERM after the last step's check (e.g. during the final checkpoint wait): the
        # final checkpoint is saved; stop instead of going on (a staged run would otherwise
        # start its next run with the default handler restored and the signal lost).
        ckpt.close()
        raise preempted(step)
    run.train_time_s = elapsed + time.time() - t0
    run.last_step = step


def final_evaluation(run: TrainRun) -> dict[str, Any]:
    """The best-by-validation models (the last ones without a validation split) on the
    validation and test splits; writes `logits_<split>.npz` (process 0), closes the
    checkpointer and returns the result dict (see `train_and_evaluate`)."""
    cfg, program = run.ctx.cfg, run.ctx.program
    es = early_stopping_config(cfg)
    result: dict[str, Any] = {"workdir": run.ctx.workdir, "steps": cfg.num_steps, "train_time_s": run.train_time_s,
                              "setup_time_s": run.setup_time_s, **run.counts, "models": {},
                              "last_step": run.last_step, "stopped_early": run.stopped,
                              "first_step_s": run.first_step_s,
                              "compile_cache_hit": run.compile_cache_hit}
    if es is not None:
        result["early_stopping"] = es
    final_params = {n: run.best[n]["params"] for n in program.deployed}
    final_stats = {n: run.best[n]["batch_stats"] for n in program.deployed}
    for split in ("validation", "test"):
        src = run.ctx.sources[split]
        if src is None:
            continue
        logits_out: dict[str, np.ndarray] = {}
        res = run.evaluate(src, final_params, final_stats, logits_out=logits_out)
        if jax.process_index() == 0:  # for ensembles and per-clip comparisons of runs (e.g. recipes' results tables)
            np.savez(os.path.join(run.ctx.workdir, f"logits_{split}.npz"), **logits_out)
        for n, r in res.items():
            entry = {"best_step": int(run.best[n]["step"]), **convergence(run, n)}
            result["models"].setdefault(n, entry)[split] = r
    run.ckpt.close()
    return result


def improves(value: float, best_metric: Any) -> bool:
    """Whether a validation `value` beats the best model's stored metric (a float32 scalar).

    Compared in float32, the precision the best entry is stored in (`TrainRun.snapshot`): a tie
    (the same accuracy again, e.g. 566/638 at two validations) is no improvement, so the best
    model and `best_step` stay at the first evaluation that reached the value, as the
    convergence rule (`kdjax.train.convergence.stopping_point`, strict `>`) counts it. A
    float64 value compared with its own float32 rounding would count every tie whose rounding
    went down as an improvement (before 2026-12-07).
    """
    return bool(np.float32(value) > np.float32(np.asarray(best_metric)))


def convergence(run: TrainRun, name: str) -> dict[str, Any]:
    """`{last_step, converged}` of deployed model `name`: converged when its validation metric
    did not improve in the last `patience` validations (`early_stopping.patience`, else
    `convergence_patience`, default 3; kdjax.train.convergence.stopping_point); None without
    validations (no validation split)."""
    cfg = run.ctx.cfg
    es = early_stopping_config(cfg)
    if es is not None:
        patience, min_delta = es["patience"], es["min_delta"]
    else:
        patience, min_delta = int(cfg.get("convergence_patience", 3)), 0.0
    hist = run.val_history.get(name, [])
    return {"last_step": run.last_step,
            "converged": stopping_point(hist, patience, min_delta)[1] if hist else None}


def train_and_evaluate(cfg: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Trains `cfg` in `workdir` (resuming if possible); returns the result dict (also result.json).

    Result: `{workdir, steps (the ceiling cfg.num_steps), last_step, stopped_early,
    train_time_s, setup_time_s, first_step_s (s), compile_cache_hit, early_stopping (when on),
    params, train_only_params, teacher_params (counts by model), models: {name: {best_step,
    last_step, converged, validation: {...}, test: {metric, loss, confusion_matrix,
    per_class_accuracy, ...}}}}`.

    Raises:
      TrainingDivergedError: NaN/inf loss (the last good checkpoint is kept).
      Preempted: SIGTERM received; a checkpoint was saved.
      DatasetNotFoundError, AudioError, ValueError: bad data or config (one-line messages).
    """
    t_setup = time.time()
    run = prepare(StageContext.build(cfg, workdir))
    try:
        start = restore(run)
        train(run, start, t_setup)
        result = final_evaluation(run)
        write_result(run.ctx.workdir, result)
        run.log.write(run.last_step, {f"test/{n}/{run.metric}": r["test"][run.metric]
                                      for n, r in result["models"].items() if "test" in r})
    finally:
        run.log.close()
    return result
