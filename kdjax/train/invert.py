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
             gain_db (0; g: each view gets a level offset from U(-g, g), per example), log_every}
  losses    terms over the namespace: `features.<feature>` is the synthetic batch `[B, T, F]`
            (after augmentation), `batch.labels` its targets, e.g. softmax_xent(teacher.t.logits,
            batch.labels), bn_statistics_loss(teacher.t.bn), total_variation / l2_prior
            (features.<feature>)
Writes `<workdir>/synthetic/shard_<k>.npz` (`features/<feature>` `[B, T, F]`, `labels` `[B, C]`,
`teacher_logits` of the first teacher on the final inputs) and `synthetic/meta.json`, read
back by the `synthetic` data source (kdjax.data.synthetic); `metrics.jsonl` (every term at
the first and last step of each batch) and `result.json` (samples, time, samples/s).
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
                 "freq_basis", "time_stride", "freq_jitter", "gain_db"}


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
    tx = optax.adam(float(inv.lr))
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

    first_teacher = next(iter(program.teachers), None)

    @jax.jit
    def final_outputs(x, teachers):
        ns, _ = forward(program, teachers, {"mask": jnp.ones(x.shape[0])}, jax.random.key(0),
                        train=False, overrides={f"features.{feature}": x})
        return ns["teacher"][first_teacher]["logits"], (resolve(ns, bank_path) if bank_path else None)

    out_dir = os.path.join(workdir, "synthetic")
    os.makedirs(out_dir, exist_ok=True)
    meta = {"sample_rate": ctx.sample_rate, "class_names": list(src.class_names), "feature_key": feature,
            "multi_label": False, "shape": list(shape)}
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
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
    result = {"kind": "invert", "summary": {
        "num_samples": n_batches * bsz, "new_samples": made * bsz, "time_s": dt,
        "samples_per_s": made * bsz / max(dt, 1e-9), "loss_first": first_loss, "loss_last": last_loss,
        "shape": list(shape)}}
    write_result(workdir, result)
    return result
