"""The `invert` stage: optimise inputs (not parameters) against frozen models and write
synthetic shards (model inversion for data-free KD: DeepInversion, FRAMI).

Config (a stage with `kind="invert"`):
  data      the data block, read for its metadata only (classes, sample rate, clip length;
            no audio is decoded: the stage is data-free)
  teachers  frozen modules with checkpoints (`capture_bn=True` gives `teacher.<t>.bn`, the
            BatchNorm moments DeepInversion's prior matches)
  invert    {feature: the front-end key whose output is optimised (`features.<feature>`, e.g.
             "teacher_t" for teacher t's own front-end), num_batches, batch_size, steps (Adam
             steps per batch), lr, init_mean, init_std (x ~ N(mean, std^2), in the
             front-end's units, e.g. dB), targets: "balanced" (class k = i mod C, shuffled)
             or "random", jitter (random circular time shift of up to this many frames per
             step, DeepInversion's jitter), flip (random time reversal), views: 1 or 2 (2:
             the frozen modules also see a second augmented view, `view2.<path>`, for
             contrastive terms), memory_bank: {path, size} (optional: the namespace path,
             e.g. "teacher.t.feats.embedding", of the final synthetic samples of earlier
             batches, kept for the last `size` samples and given to the objective as
             `batch.memory_bank` `[M, D]`, e.g. as `feature_invariant_contrastive`'s negatives
             via `kw_inputs={"memory_bank": "batch.memory_bank"}`; contrastive model
             inversion, Fang et al. IJCAI 2021), clip: [low, high] (optional: after every
             update the inputs are clamped to this range, in the front-end's units, e.g.
             [-100, 20] dB for a dB log-mel floored at -100; DeepInversion clips images to
             the valid pixel range the same way), freq_basis (0, default: every bin is free;
             K > 0: each frame is the sum of the first K orthonormal DCT-II basis vectors over
             the F bins, so only K cepstral coefficients per frame are optimised and the
             spectrum is smooth along frequency, as a liftered cepstrum), time_stride (1,
             default; s > 1: the coefficients are optimised on every s-th frame and linearly
             interpolated to the T frames; see `spectrogram_parametrization`), freq_jitter
             (0; k: each view is shifted along frequency by up to k bins, per example),
             gain_db (0; g: each view gets a level offset from U(-g, g), per example), log_every,
             lr_schedule: "constant" (default) | "cosine" (`optax.cosine_decay_schedule` from
             lr to 0 over the steps) | "warmup_cosine" (`optax.warmup_cosine_decay_schedule`:
             linear from 0 to lr over `warmup_steps`, then cosine to 0; DeepInversion's
             `lr_cosine_policy(lr, 100, iterations)`), warmup_steps (0),
             accept_accuracy (0.0: the acceptance check, see below), on_reject ("stop" |
             "warn"), accept_teacher (the teacher whose accuracy is checked and whose logits
             are stored; default the first)}
  losses    terms over the namespace: `features.<feature>` is the synthetic batch `[B, T, F]`
            (after augmentation), `batch.labels` its targets, e.g. softmax_xent(teacher.t.logits,
            batch.labels), bn_statistics_loss(teacher.t.bn), total_variation / l2_prior
            (features.<feature>)
Writes `<workdir>/synthetic/shard_<k>.npz` (`features/<feature>` `[B, T, F]`, `labels` `[B, C]`,
`teacher_logits` of `accept_teacher` on the final inputs) and `synthetic/meta.json`, read
back by the `synthetic` data source (kdjax.data.synthetic); `metrics.jsonl` (every term, and
`invert/target_accuracy`: the teacher's accuracy on the batch's targets on the un-augmented
inputs, at the first and last step of each batch and every `log_every` steps) and
`result.json` (samples, time, samples/s, acceptance).

Acceptance check: after the last batch the teacher's accuracy on its own targets over the whole
set (argmax of the stored `teacher_logits` vs argmax of `labels`, every shard, so a resumed
run checks the whole set) is `teacher_accuracy_on_targets` in result.json's summary and in
`synthetic/meta.json` `acceptance`; the set is `accepted` when it is >= `accept_accuracy`.
A rejected set is logged loudly (a `REJECTED` line on stdout); with `on_reject="stop"`
(default) the `synthetic` source refuses to read it (and a set whose inversion has not
finished: `status: "pending"`), so no student stage silently trains on it; `on_reject="warn"`
reports only. Source of the check: the FRAMI/DeepInversion papers report that the teacher
classifies the synthetic samples as their targets; the threshold is our choice (issue #27).
Shards already written are kept and skipped on a rerun (resume); a NaN/inf objective stops
with a one-line `TrainingDivergedError` and writes no shard for that batch.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from kdjax.train.forward import forward, resolve, weighted_loss
from kdjax.train.program import Program
from kdjax.train.setup import (
    Logger,
    StageContext,
    TrainingDivergedError,
    check_finite,
    write_result,
)

INVERT_FIELDS = {"feature", "num_batches", "batch_size", "steps", "lr", "init_mean", "init_std",
                 "targets", "jitter", "flip", "views", "log_every", "seed", "memory_bank", "clip",
                 "freq_basis", "time_stride", "freq_jitter", "gain_db", "lr_schedule",
                 "warmup_steps", "accept_accuracy", "on_reject", "accept_teacher"}
LR_SCHEDULES = ("constant", "cosine", "warmup_cosine")
ON_REJECT = ("stop", "warn")


def inversion_lr(inv: Any) -> Any:
    """The inversion's learning rate: a float (`lr_schedule="constant"`) or an optax schedule
    over the `steps` of each batch (restarted per batch: every batch is a fresh optimisation).

    Raises:
      ValueError: an unknown `lr_schedule`, or `warmup_steps` outside [0, steps).

    Source: `optax.cosine_decay_schedule` / `optax.warmup_cosine_decay_schedule`; DeepInversion
    (Yin et al., CVPR 2020, reference code `lr_cosine_policy(lr, 100, iterations)`) warms up
    for 100 steps and decays the rest with a cosine.
    """
    lr, steps = float(inv["lr"]), int(inv["steps"])
    kind = str(inv.get("lr_schedule", "constant") or "constant")
    warmup = int(inv.get("warmup_steps", 0) or 0)
    if kind not in LR_SCHEDULES:
        raise ValueError(f"invert.lr_schedule={kind!r}: expected one of {list(LR_SCHEDULES)}")
    if kind == "constant":
        return lr
    if kind == "cosine":
        return optax.cosine_decay_schedule(lr, max(steps, 1))
    if not 0 <= warmup < max(steps, 1):
        raise ValueError(f"invert.warmup_steps={warmup}: expected 0 <= warmup_steps < steps={steps}")
    return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(steps, 1), end_value=0.0)


def target_accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of samples whose teacher argmax is their target: `logits [N, C]`, `labels [N, C]`
    (one-hot targets). NaN for N = 0."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    if not len(labels):
        return float("nan")
    return float(np.mean(np.argmax(logits, -1) == np.argmax(labels, -1)))


def acceptance(out_dir: str, accept_accuracy: float, on_reject: str) -> dict[str, Any]:
    """The acceptance check of the synthetic set in `out_dir` (see the module docstring):
    `{status, teacher_accuracy_on_targets, accept_accuracy, on_reject, num_samples}`.

    Raises:
      ValueError: a shard without `teacher_logits` (no teacher in the stage).
    """
    logits, labels = [], []
    for name in sorted(os.listdir(out_dir)):
        if name.startswith("shard_") and name.endswith(".npz") and ".tmp" not in name:
            with np.load(os.path.join(out_dir, name)) as z:
                if "teacher_logits" not in z.files:
                    raise ValueError(f"invert: {out_dir}/{name} has no teacher_logits: the acceptance "
                                     "check needs a teacher (stage `teachers`)")
                logits.append(z["teacher_logits"])
                labels.append(z["labels"])
    acc = target_accuracy(np.concatenate(logits), np.concatenate(labels)) if logits else float("nan")
    ok = bool(acc >= accept_accuracy)  # NaN (no shard) is not accepted
    return {"status": "accepted" if ok else "rejected", "teacher_accuracy_on_targets": acc,
            "accept_accuracy": float(accept_accuracy), "on_reject": on_reject,
            "num_samples": int(sum(len(v) for v in labels))}


def _augment(x: jax.Array, rng: jax.Array, jitter: int, flip: bool, freq_jitter: int = 0,
             gain_db: float = 0.0) -> jax.Array:
    """Random views of `x [B, T, F]`: DeepInversion's jitter (circular time shift of up to
    `jitter` frames, the same for the batch) and time flip; per example, a shift along
    frequency of up to `freq_jitter` bins (edge bins repeated, not wrapped) and a level offset
    drawn from U(-gain_db, gain_db) (in the front-end's units: dB for a dB log-mel)."""
    if jitter:
        shift = jax.random.randint(jax.random.fold_in(rng, 0), (), -jitter, jitter + 1)
        x = jnp.roll(x, shift, axis=1)
    if flip:
        x = jnp.where(jax.random.bernoulli(jax.random.fold_in(rng, 1)), x[:, ::-1], x)
    b, _, f = x.shape
    if freq_jitter:
        sh = jax.random.randint(jax.random.fold_in(rng, 2), (b,), -freq_jitter, freq_jitter + 1)
        idx = jnp.clip(jnp.arange(f)[None, :] - sh[:, None], 0, f - 1)  # [B, F]
        x = jnp.take_along_axis(x, idx[:, None, :], axis=2)
    if gain_db:
        x = x + jax.random.uniform(jax.random.fold_in(rng, 3), (b, 1, 1), minval=-gain_db, maxval=gain_db)
    return x


def spectrogram_parametrization(shape: tuple[int, int, int], freq_basis: int = 0, time_stride: int = 1,
                                 ) -> tuple[tuple[int, int, int], Any, Any]:
    """A smooth parametrisation of inverted spectrograms `x [B, T, F] = P(theta)`.

    `theta [B, ceil(T / time_stride), K]` holds, per kept frame, the first `K = freq_basis`
    coefficients of the orthonormal DCT-II over the F bins (a liftered cepstrum: only the
    spectral envelope is free), and `P` maps them back (`theta @ D_K^T`, D the `[F, K]` basis)
    and interpolates linearly in time to the T frames. `freq_basis=0` and `time_stride=1`:
    `P` is the identity (every bin of every frame free, DeepInversion's pixel inputs).

    Args:
      shape: `(B, T, F)` of the spectrograms.
      freq_basis: K, `0 <= K <= F` (0: all F bins, no basis).
      time_stride: s >= 1, frames per optimised frame.

    Returns:
      (theta's shape, `P: theta -> x [B, T, F]`, `P_inv: x -> theta`, the least-squares
      projection, used for the initialisation: `P(P_inv(x))` is `x` smoothed).

    Raises:
      ValueError: K outside [0, F] or s < 1 (names `invert.freq_basis` / `invert.time_stride`).

    Source: cepstral smoothing of the log spectrum (Oppenheim & Schafer, "Discrete-Time Signal
    Processing", homomorphic deconvolution); a reparametrised input in place of free pixels as in
    feature visualisation (Olah et al., Distill 2017). Our choice for FRAMI (its parametrisation
    is unpublished).
    """
    from kdjax.frontends import dct_matrix as _dct_matrix

    b, t, f = shape
    k, s = int(freq_basis), int(time_stride)
    if not 0 <= k <= f:
        raise ValueError(f"invert.freq_basis={freq_basis!r}: expected 0 (free bins) .. {f} (the front-end's bins)")
    if s < 1:
        raise ValueError(f"invert.time_stride={time_stride!r}: expected an integer >= 1")
    tk = -(-t // s)
    basis = jnp.asarray(_dct_matrix(f, k, 0.0)) if k else None  # [F, K], orthonormal columns
    hi = jax.lax.Precision.HIGHEST

    def to_x(theta):
        x = jnp.einsum("btk,fk->btf", theta, basis, precision=hi) if basis is not None else theta
        if s > 1:  # linear interpolation: kept frame j sits at frame j * s
            pos = jnp.arange(t, dtype=jnp.float32) / s
            lo = jnp.clip(jnp.floor(pos).astype(jnp.int32), 0, tk - 1)
            up = jnp.clip(lo + 1, 0, tk - 1)
            w = (pos - lo)[None, :, None]
            x = (1 - w) * x[:, lo] + w * x[:, up]
        return x

    def to_theta(x):
        if s > 1:
            x = x[:, ::s]
        return jnp.einsum("btf,fk->btk", x, basis, precision=hi) if basis is not None else x

    return (b, tk, k or f), to_x, to_theta


def inversion_objective(program: Program, feature: str, teachers: Any, x: jax.Array,
                        labels: jax.Array, rng: jax.Array, *, jitter: int = 0, flip: bool = False,
                        freq_jitter: int = 0, gain_db: float = 0.0,
                        views: int = 1, memory_bank: jax.Array | None = None,
                        ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The weighted objective of synthetic inputs `x [B, T, F]` with targets `labels [B, C]`
    (and an optional `memory_bank [M, D]` of earlier samples' features, `batch.memory_bank`).

    Gradients flow through the frozen modules to `x` only (the modules' variables are
    constants here; `jax.grad` is taken with respect to `x`).

    Returns:
      (scalar objective, metrics: every term and the total).
    """
    mask = jnp.ones(x.shape[0], jnp.float32)
    batch = {"labels": labels, "mask": mask}
    if memory_bank is not None:
        batch["memory_bank"] = memory_bank
    key = f"features.{feature}"
    ns, _ = forward(program, teachers, batch, rng, train=False,
                    overrides={key: _augment(x, jax.random.fold_in(rng, 11), jitter, flip, freq_jitter, gain_db)},
                    stop_frozen=False)
    if views == 2:
        ns2, _ = forward(program, teachers, batch, jax.random.fold_in(rng, 2), train=False,
                         overrides={key: _augment(x, jax.random.fold_in(rng, 12), jitter, flip, freq_jitter, gain_db)},
                         stop_frozen=False)
        ns["view2"] = {k: v for k, v in ns2.items() if k not in ("batch",)}
    return weighted_loss(program.terms, ns, mask)


def _targets(kind: str, n: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "balanced":
        ids = rng.permutation(np.arange(n) % num_classes)
    elif kind == "random":
        ids = rng.integers(0, num_classes, n)
    else:
        raise ValueError(f"invert.targets={kind!r}: expected 'balanced' or 'random'")
    return np.eye(num_classes, dtype=np.float32)[ids]


def make_inversion_step(program: Program, feature: str, teachers: Any, inv: Any,
                        shape: tuple[int, int, int]) -> tuple[Any, Any, Any]:
    """The jitted Adam step of the `invert` stage for its `invert` block `inv` (fields as in the
    module docstring: lr, jitter, flip, views, freq_jitter, gain_db, clip, freq_basis,
    time_stride) and inputs of `shape` `[B, T, F]`; shared by `invert_and_save` and
    benchmarks/inversion_step.py, so the benchmark times the stage's own step.

    Returns:
      (`step(theta, opt_state, labels [B, C], rng, memory_bank [M, D] | None) -> (theta,
      opt_state, metrics)`, `init(x0 [B, T, F]) -> (theta, opt_state)` (the smooth part of `x0`
      with a parametrisation), `inputs(theta) -> x [B, T, F]`, jitted).

    Raises:
      ValueError: a malformed `clip`, or `freq_basis` / `time_stride` out of range.
    """
    tx = optax.adam(inversion_lr(inv))
    jitter, flip, views = int(inv.get("jitter", 0)), bool(inv.get("flip", False)), int(inv.get("views", 1))
    freq_jitter, gain_db = int(inv.get("freq_jitter", 0) or 0), float(inv.get("gain_db", 0.0) or 0.0)
    clip = tuple(float(v) for v in inv.clip) if inv.get("clip") else None
    if clip is not None and (len(clip) != 2 or clip[0] >= clip[1]):
        raise ValueError(f"invert.clip={inv.clip!r}: expected [low, high] with low < high")
    freq_basis, time_stride = int(inv.get("freq_basis", 0) or 0), int(inv.get("time_stride", 1) or 1)
    smooth = bool(freq_basis) or time_stride > 1
    _, to_x, to_theta = spectrogram_parametrization(shape, freq_basis, time_stride)

    def inputs(theta):
        """x [B, T, F] = P(theta); with a parametrisation the clamp is part of P (the free inputs
        are clamped after every update instead, so that they stay in range)."""
        x = to_x(theta)
        return jnp.clip(x, clip[0], clip[1]) if smooth and clip is not None else x

    @jax.jit
    def step(theta, opt_state, labels, rng, bank):
        (_, m), g = jax.value_and_grad(
            lambda th: inversion_objective(program, feature, teachers, inputs(th), labels, rng, jitter=jitter,
                                           flip=flip, freq_jitter=freq_jitter, gain_db=gain_db, views=views,
                                           memory_bank=bank), has_aux=True)(theta)
        upd, opt_state = tx.update(g, opt_state, theta)
        theta = optax.apply_updates(theta, upd)
        if clip is not None and not smooth:
            theta = jnp.clip(theta, clip[0], clip[1])
        return theta, opt_state, m

    def init(x0):
        theta = to_theta(x0) if smooth else x0  # the smooth part of the same draw
        return theta, tx.init(theta)

    return step, init, jax.jit(inputs)


def invert_and_save(cfg: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Runs the invert stage `cfg` in `workdir`; returns the result dict (also result.json).

    Raises:
      ValueError: an unknown `invert` field or feature key, no loss terms.
      TrainingDivergedError: the objective became NaN/inf (shards written so far are kept).
    """
    inv = cfg.invert
    unknown = set(inv) - INVERT_FIELDS
    if unknown:
        raise ValueError(f"invert: unknown field(s) {sorted(unknown)}; fields: {sorted(INVERT_FIELDS)}")
    if not cfg.get("losses"):
        raise ValueError("invert: the stage has no loss terms (losses)")
    ctx = StageContext.build(cfg, workdir, roles=("train",))  # metadata only: no audio is decoded
    workdir, program, src = ctx.workdir, ctx.program, ctx.sources["train"]
    num_classes = ctx.num_classes
    feature = str(inv.feature)
    if feature not in program.frontends:
        raise ValueError(f"invert.feature={feature!r}: expected a front-end key, one of {sorted(program.frontends)}")
    bsz, n_batches, steps = int(inv.batch_size), int(inv.num_batches), int(inv.steps)
    shape = jax.eval_shape(program.frontends[feature], jax.ShapeDtypeStruct((bsz, ctx.clip_samples), jnp.float32)).shape
    teachers = jax.device_put(dict(ctx.teachers))
    step, init_theta, inputs = make_inversion_step(program, feature, teachers, inv, shape)
    bank_cfg = inv.get("memory_bank") or {}
    bank_path, bank_size = str(bank_cfg.get("path", "")), int(bank_cfg.get("size", 0) or 0)

    first_teacher = str(inv.get("accept_teacher", "") or "") or next(iter(program.teachers), None)
    if first_teacher is not None and first_teacher not in program.teachers:
        raise ValueError(f"invert.accept_teacher={first_teacher!r}: expected one of {sorted(program.teachers)}")
    accept_at = float(inv.get("accept_accuracy", 0.0) or 0.0)
    on_reject = str(inv.get("on_reject", "stop") or "stop")
    if on_reject not in ON_REJECT:
        raise ValueError(f"invert.on_reject={on_reject!r}: expected one of {list(ON_REJECT)}")

    @jax.jit
    def final_outputs(x, teachers):
        ns, _ = forward(program, teachers, {"mask": jnp.ones(x.shape[0])}, jax.random.key(0),
                        train=False, overrides={f"features.{feature}": x})
        return ns["teacher"][first_teacher]["logits"], (resolve(ns, bank_path) if bank_path else None)

    out_dir = os.path.join(workdir, "synthetic")
    os.makedirs(out_dir, exist_ok=True)
    meta = {"sample_rate": ctx.sample_rate, "class_names": list(src.class_names), "feature_key": feature,
            "multi_label": False, "shape": list(shape)}
    if first_teacher is not None:  # until the check has run, a "stop" set is not readable
        meta["acceptance"] = {"status": "pending", "accept_accuracy": accept_at, "on_reject": on_reject}
    _write_meta(out_dir, meta)
    log = Logger(workdir, jax.process_index() == 0)
    log_every = int(inv.get("log_every", 0) or steps)
    seed = int(inv.get("seed", cfg.get("seed", 0)))
    t0, made, first_loss, last_loss = time.time(), 0, None, None
    bank: jax.Array | None = None  # features of the last `bank_size` final samples (batch.memory_bank)

    if bank_size:  # starts empty, [0, D]: the first batch has no extra negatives
        z_shape = jax.eval_shape(final_outputs, jax.ShapeDtypeStruct(shape, jnp.float32), teachers)[1]
        bank = jnp.zeros((0, *z_shape.shape[1:]), jnp.float32)

    def add_to_bank(x):
        nonlocal bank
        if bank_size:
            bank = jnp.concatenate([bank, final_outputs(x, teachers)[1]])[-bank_size:]

    try:
        for b in range(n_batches):
            path = os.path.join(out_dir, f"shard_{b:05d}.npz")
            if os.path.exists(path):
                if bank_size:  # resume: rebuild the bank from the shards already written
                    with np.load(path) as z:
                        add_to_bank(jnp.asarray(z[f"features/{feature}"]))
                continue
            rng = jax.random.fold_in(jax.random.key(seed), b)
            labels = jnp.asarray(_targets(str(inv.get("targets", "balanced")), bsz, num_classes,
                                          np.random.default_rng([seed, b])))
            x0 = float(inv.get("init_mean", 0.0)) + float(inv.get("init_std", 1.0)) * jax.random.normal(
                jax.random.fold_in(rng, 1), shape, jnp.float32)
            theta, opt_state = init_theta(x0)
            for s in range(steps):
                theta, opt_state, m = step(theta, opt_state, labels, jax.random.fold_in(rng, 100 + s), bank)
                if s == 0 or s == steps - 1 or (s + 1) % log_every == 0:
                    m = check_finite(m, what="invert: objective", at=f"batch {b} step {s}",
                                     kept=f"{made} new shard(s) kept in {out_dir}")
                    if first_teacher is not None:  # on the un-augmented inputs after this step
                        m = dict(m, target_accuracy=target_accuracy(
                            final_outputs(inputs(theta), teachers)[0], labels))
                    log.write(b * steps + s + 1, {f"invert/{k}": v for k, v in m.items()})
                    if s == 0 and first_loss is None:
                        first_loss = float(m["loss"])
                    last_loss = float(m["loss"])
            x = inputs(theta)
            x_host = np.asarray(jax.device_get(x), np.float32)
            if not np.all(np.isfinite(x_host)):
                raise TrainingDivergedError(f"invert: non-finite inputs at batch {b}; stopped, {made} new shard(s) kept")
            arrays = {f"features/{feature}": x_host, "labels": np.asarray(labels)}
            if first_teacher is not None:
                arrays["teacher_logits"] = np.asarray(final_outputs(x, teachers)[0], np.float32)
            tmp = path + ".tmp.npz"
            np.savez(tmp, **arrays)
            os.replace(tmp, path)  # complete shards only
            made += 1
            add_to_bank(x)
    finally:
        log.close()
    dt = time.time() - t0
    summary = {"num_samples": n_batches * bsz, "new_samples": made * bsz, "time_s": dt,
               "samples_per_s": made * bsz / max(dt, 1e-9), "loss_first": first_loss, "loss_last": last_loss,
               "shape": list(shape)}
    if first_teacher is not None:
        acc = acceptance(out_dir, accept_at, on_reject)
        summary |= {"teacher_accuracy_on_targets": acc["teacher_accuracy_on_targets"],
                    "accept_accuracy": accept_at, "accepted": acc["status"] == "accepted",
                    "on_reject": on_reject}
        _write_meta(out_dir, dict(meta, acceptance=acc))
        line = (f"teacher accuracy on its targets {acc['teacher_accuracy_on_targets']:.4f} over "
                f"{acc['num_samples']} samples (accept_accuracy {accept_at:g})")
        if acc["status"] == "accepted":
            print(f"invert: synthetic set {out_dir} accepted: {line}", flush=True)
        else:
            then = ("student stages reading it will refuse it" if on_reject == "stop"
                    else "on_reject=warn: it stays readable")
            print(f"invert: REJECTED synthetic set {out_dir}: {line}; {then}", flush=True)
    result = {"kind": "invert", "summary": summary}
    write_result(workdir, result)
    return result


def _write_meta(out_dir: str, meta: dict[str, Any]) -> None:
    """`synthetic/meta.json`, replaced atomically (a reader never sees half a file)."""
    tmp = os.path.join(out_dir, "meta.json.tmp")
    with open(tmp, "w") as f:
        json.dump(meta, f, indent=1)
    os.replace(tmp, os.path.join(out_dir, "meta.json"))
