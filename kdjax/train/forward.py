"""Run a Program: fill its namespace (front-ends, then modules in dependency order), initialise
its trainable modules on the same walk, mix a batch, and sum its loss terms.

This file owns everything that *executes* a compiled `Program` (kdjax.train.program):
  forward          the namespace of one batch (training, evaluation, inversion, caching)
  init_variables   the initial variables of the trainable modules, on the same walk as forward
  weighted_loss    the recipe's weighted sum of loss terms over a namespace
  train_metrics    per-model train accuracy / micro-F1
  mix              in-step mixup ("consistent teaching")
  augment_features SpecAugment on the students' front-end outputs (train step only)
  capture_bn_moments  BatchNorm input moments for DeepInversion's prior
Gradients are taken with respect to an explicit trainable pytree (`forward`'s `variables` for
training; `overrides` -- synthetic inputs -- for model inversion, see kdjax.train.invert).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from kdjax import augment
from kdjax import losses as losses_lib
from kdjax.train.program import LossTerm, Node, Program


def resolve(namespace: Mapping[str, Any], path: str) -> Any:
    """Looks up a dotted key path ("teacher.cnn.feats.frames") in nested dicts.

    Raises:
      KeyError: a missing key, naming the path and the keys that exist at that level.
    """
    node: Any = namespace
    for i, part in enumerate(path.split(".")):
        if not isinstance(node, Mapping) or part not in node:
            have = sorted(node) if isinstance(node, Mapping) else type(node).__name__
            raise KeyError(
                f"loss input {path!r}: no {part!r} at {'.'.join(path.split('.')[:i]) or 'top'}; has {have}"
            )
        node = node[part]
    return node


def weighted_loss(
    terms: tuple[LossTerm, ...], namespace: Mapping[str, Any], mask: jax.Array,
    step: jax.Array | int = 0,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Sum of `weight * term` over the recipe's terms.

    A term may return a scalar (used as is), `[B]` (reduced with `masked_mean(value, mask)`) or
    `[K, B]` (K trainable peers, e.g. `mutual_kl`: each row reduced over B with the mask, then
    summed over K, so each peer's gradient is that of its own row; the rows are also reported
    as `loss/<name>/<k>`).

    Args:
      terms: the recipe's terms.
      namespace: the forward pass's namespace (see module docstring).
      mask: `[B]` 1 for real examples, 0 for padding.
      step: the optimisation step (for scheduled weights; reported as `weight/<name>`).

    Returns:
      (total scalar, `{"loss": total, "loss/<name>": unweighted value, ...}`).

    Raises:
      ValueError: a term returned another shape (names the term, function and shape).
      KeyError: a missing input path.
    """
    total = jnp.zeros((), jnp.float32)
    metrics = {}
    for t in terms:
        args = [resolve(namespace, p) for p in t.inputs]
        kw = dict(t.kw) | {k: resolve(namespace, p) for k, p in t.kw_inputs.items()}
        value = jnp.asarray(t.fn(*args, **kw))
        if value.ndim == 1:
            value = losses_lib.masked_mean(value, mask)
        elif value.ndim == 2 and value.shape[1] == mask.shape[0]:
            rows = losses_lib.masked_mean(value, mask[None, :], axis=1)
            for k in range(rows.shape[0]):
                metrics[f"loss/{t.name}/{k}"] = rows[k]
            value = jnp.sum(rows)
        elif value.ndim != 0:
            raise ValueError(
                f"losses.{t.name}: {t.fn.__name__} returned shape {value.shape}, expected a "
                f"scalar, [B] or [K, B] with B={mask.shape[0]}"
            )
        w = t.weight(step) if t.scheduled else t.weight
        if t.scheduled:
            metrics[f"weight/{t.name}"] = jnp.asarray(w, jnp.float32)
        metrics[f"loss/{t.name}"] = value
        total = total + w * value
    metrics["loss"] = total
    return total, metrics


def capture_bn_moments(fn: Callable[[], Any], variables: Mapping[str, Any]) -> tuple[Any, dict]:
    """Runs `fn()` (a Flax `apply`) and records each BatchNorm layer's input moments.

    For DeepInversion's feature-distribution prior: for every `nn.BatchNorm` called inside,
    in call order, `"<module path>" -> (batch_mean [C], batch_var [C], running_mean [C],
    running_var [C])`, the batch moments over all axes but the last (biased variance, as the
    reference hook's `input.var(unbiased=False)`), the running statistics from
    `variables["batch_stats"]`. Works for any Flax model without changing it
    (`flax.linen.intercept_methods`).

    Source: Yin et al., "Dreaming to Distill" (CVPR 2020), Eq. 4; NVlabs/DeepInversion
    `DeepInversionFeatureHook`.

    Raises:
      KeyError: a BatchNorm layer without running statistics in `variables`.
    """
    records: dict[str, Any] = {}
    stats = variables.get("batch_stats", {})

    def interceptor(next_fun, args, kwargs, context):
        if isinstance(context.module, nn.BatchNorm) and context.method_name == "__call__":
            path = tuple(context.module.path)
            node: Any = stats
            for p in path:
                if p not in node:
                    raise KeyError(f"BatchNorm {'/'.join(path)}: no running statistics in batch_stats")
                node = node[p]
            mu, var = losses_lib.bn_batch_moments(jnp.asarray(args[0], jnp.float32))
            records["/".join(path)] = (mu, var, node["mean"], node["var"])
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(interceptor):
        out = fn()
    return out, records


def set_path(ns: dict[str, Any], path: str, value: Any) -> None:
    """Stores `value` at the dotted key path `path` of the nested dict `ns`, creating the levels."""
    parts = path.split(".")
    node = ns
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


def apply_node(node: Node, variables: Mapping[str, Any], x: Any, *, train: bool,
               rng: jax.Array | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One module's outputs on its input `x`.

    Args:
      node: the module.
      variables: its `{"params", "batch_stats"}` (`batch_stats` may be absent).
      x: its input (resolved from the namespace).
      train: run in training mode (batch statistics, dropout; BatchNorm statistics updated).
      rng: the module's dropout key (used in training mode only).

    Returns:
      (namespace entry `{"logits" [B, C], "feats": {...}}` plus `"bn"` with `capture_bn`, the
      updated `batch_stats` in training mode, else None).
    """
    v_in = {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}

    def apply():
        return node.module.apply(
            v_in, x, train=train, mutable=["batch_stats"] if train else False,
            rngs={"dropout": rng} if train else None,
        )

    if node.capture_bn:
        out, bn = capture_bn_moments(apply, v_in)
    else:
        out, bn = apply(), None
    upd = None
    if train:
        (logits, feats), upd = out
        upd = upd.get("batch_stats", {})
    else:
        logits, feats = out
    entry: dict[str, Any] = {"logits": logits, "feats": feats}
    if bn is not None:
        entry["bn"] = bn
    return entry, upd


def walk(program: Program, batch: Mapping[str, Any], nodes: tuple[Node, ...],
         run: Callable[[int, Node, Any], dict[str, Any]],
         overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The namespace walk shared by `forward` and `init_variables`.

    Fills `{"batch", "features"}` (only the front-ends that `nodes` and the loss terms read and
    `overrides` do not replace), writes the cached teacher outputs the batch carries
    (`program.cached`: `batch[key]` at `teacher.<t>.<output>`) and `overrides` at their paths,
    then stores `run(i, node, input)` at each node's path, `i` its position in `nodes`, in order.

    Raises:
      KeyError: a node's input path is missing (see `resolve`).
      ValueError: a needed front-end has neither audio nor stored features in the batch.
    """
    overrides = dict(overrides or {})
    needed = {n.input.split(".", 1)[1] for n in nodes if n.input.startswith("features.")}
    needed |= {t_in.split(".", 1)[1] for t in program.terms for t_in in
               (*t.inputs, *t.kw_inputs.values()) if t_in.startswith("features.")}
    needed -= {p.split(".", 1)[1] for p in overrides if p.startswith("features.")}
    ns: dict[str, Any] = {"batch": dict(batch),
                          "features": program.features(batch.get("audio"), batch, needed)}
    for c in program.cached:
        if c.key in batch:  # absent from an example batch of audio only (init, eval)
            set_path(ns, c.path, batch[c.key])
    for p, v in overrides.items():
        set_path(ns, p, v)
    for i, node in enumerate(nodes):
        set_path(ns, node.path, run(i, node, resolve(ns, node.input)))
    return ns


def forward(program: Program, variables: Mapping[str, Any], batch: Mapping[str, jax.Array], rng: jax.Array,
            *, train: bool, overrides: Mapping[str, jax.Array] | None = None,
            nodes: tuple[Node, ...] | None = None,
            stop_frozen: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fills the program's namespace: front-ends, then every module in dependency order.

    Args:
      program: the Program.
      variables: `{node name: {"params", "batch_stats"}}` for every node computed (trainable
        and frozen; frozen names as in `teachers.<name>`).
      batch: `audio [B, N]` and/or `features/<key> [B, T, F]`, `labels [B, C]`, `mask [B]`,
        optional joined arrays.
      rng: dropout key (folded per module).
      train: training mode for trainable modules (frozen ones use their `train_mode`).
      overrides: `features.<key>` or any namespace path -> array used instead of the computed
        value (model inversion optimises these; gradients reach them through frozen modules).
      nodes: compute only these (default: all); e.g. `program.subgraph(program.deployed)`.
      stop_frozen: wrap frozen modules' outputs in stop_gradient (training); False for
        inversion, whose gradients must flow through the frozen teacher to its inputs.

    Returns:
      (namespace, new batch_stats of the trainable modules run in train mode, by name).

    Raises:
      KeyError: a missing input path or missing variables of a node.
    """
    nodes = program.nodes if nodes is None else nodes
    new_stats: dict[str, Any] = {}

    def run(i: int, node: Node, x: Any) -> dict[str, Any]:
        mode = train if node.trainable else node.train_mode
        entry, upd = apply_node(node, variables[node.name], x, train=mode,
                                rng=jax.random.fold_in(rng, i) if mode else None)
        if mode and node.trainable:
            new_stats[node.name] = upd
        if not node.trainable and stop_frozen:
            entry = jax.lax.stop_gradient(entry)
        return entry

    ns = walk(program, batch, nodes, run, overrides)
    deployed = [n for n in nodes if n.trainable and n.deploy]
    if deployed:
        ns["peers"] = {"logits": jnp.stack([resolve(ns, n.path)["logits"] for n in deployed])}
    return ns, new_stats


def init_variables(program: Program, rng: jax.Array, clip_samples: int,
                   teachers: Mapping[str, Any] | None = None,
                   batch: Mapping[str, Any] | None = None) -> tuple[dict, dict]:
    """Initial params and batch_stats of every trainable module (`{name: ...}`).

    Modules are initialised in dependency order on an example batch (zeros `[2, clip_samples]`
    audio unless `batch` is given), on `forward`'s own walk, so a module reading another's
    outputs (a training-only head on a student's frames) gets inputs of the right shape; frozen
    modules it depends on need their `teachers` variables. Module `i` of `program.nodes` gets
    the key `fold_in(rng, i)` (Flax `Module.init`).

    Jitted: un-jitted `init` dispatches (and compiles) every initialiser op on its own,
    which took ~50 s of setup on a loaded 2-core machine; one program takes a few seconds.

    A module with `pretrained` (`models.<name>.pretrained`) then gets its checkpoint's
    parameters: `load_pretrained(path, initial params)` runs after the jitted init (a module
    reading its outputs was initialised on its initial outputs; Flax initialisers use only
    their shapes, which the checkpoint keeps).

    Args:
      clip_samples: N, the audio length of the default example batch (samples).
      teachers: frozen variables `{name: {"params", "batch_stats"}}` (host or device arrays).
      batch: an example batch instead of zeros (e.g. `kdjax.train.setup.example_batch`).

    Raises:
      KeyError: a trainable module reads a frozen module whose variables were not given.
    """
    if batch is None:
        batch = {"audio": np.zeros((2, clip_samples), np.float32)}
    teachers = dict(teachers or {})
    nodes = program.subgraph(tuple(program.models))
    missing = [n.name for n in nodes if not n.trainable and n.name not in teachers]
    if missing:
        raise KeyError(f"init: trainable modules read the frozen teachers {missing}, whose variables are missing")
    index = {n.path: i for i, n in enumerate(program.nodes)}

    @jax.jit
    def init(rng, teachers):
        params, stats = {}, {}

        def run(_: int, node: Node, x: Any) -> dict[str, Any]:
            if node.trainable:
                v = node.module.init(jax.random.fold_in(rng, index[node.path]), x, train=False)
                params[node.name] = v["params"]
                stats[node.name] = v.get("batch_stats", {})
                v = {"params": params[node.name], "batch_stats": stats[node.name]}
            else:
                v = teachers[node.name]
            return apply_node(node, v, x, train=False, rng=None)[0]

        walk(program, batch, nodes, run)
        return params, stats

    params, stats = init(rng, teachers)
    for node in program.nodes:
        if node.trainable and node.pretrained:
            params[node.name] = node.load_pretrained(node.pretrained, params[node.name])
    return params, stats


def train_metrics(program: Program, ns: Mapping[str, Any], batch: Mapping[str, jax.Array]) -> dict:
    """Per deployed model: argmax accuracy (single-label) or micro-F1 at p = 0.5 (multi-label,
    over known labels `batch.label_mask`), masked by `batch.mask`."""
    out = {}
    mask = batch["mask"]
    for name in program.deployed:
        z = ns[name]["logits"]
        if program.multi_label:
            lm = batch.get("label_mask", jnp.ones_like(z)) * mask[:, None]
            pred = (z > 0).astype(jnp.float32)
            y = (batch["labels"] > 0.5).astype(jnp.float32)
            tp = jnp.sum(pred * y * lm)
            fp_fn = jnp.sum(jnp.abs(pred - y) * lm)
            out[f"train_micro_f1/{name}"] = 2 * tp / jnp.maximum(2 * tp + fp_fn, 1.0)
        else:
            hit = jnp.argmax(z, -1) == jnp.argmax(batch["labels"], -1)
            out[f"train_accuracy/{name}"] = losses_lib.masked_mean(hit.astype(jnp.float32), mask)
    return out


def mix(program: Program, batch: Mapping[str, jax.Array], rng: jax.Array) -> dict[str, jax.Array]:
    """mixup of the batch, if `program.mixup_alpha > 0`: the waveforms (`audio`) or, in a batch of
    precomputed features (a synthetic set), every `features/<key>` array, and the labels, all
    with the same Beta(alpha, alpha) weights and partner permutation (so a teacher run on the
    batch sees the same mixed inputs as the student: consistent teaching).

    Cached teacher outputs (`program.cached`, kdjax.train.program "Offline KD") are mixed with
    the same weights and permutation: features linearly, logits `z` `[B, C]` as probabilities at
    their temperature T, `p = softmax(z / T)` (multi-label: `sigmoid(z / T)`), returned as the
    logits `T log p_mix` (multi-label: `T logit(p_mix)`) whose softmax (sigmoid) at T is `p_mix`
    (probabilities clipped below at float32's tiny, multi-label also above at 1 - eps, so the
    logs stay finite). This is
    EfficientAT's mixing of stored teacher predictions; it approximates the live teacher on
    the mixed audio.

    Raises:
      ValueError: mixup with other per-clip arrays in the batch (e.g. `data.join` embeddings: they
        would no longer match the mixed inputs), or with both `audio` and `features/<key>`.
    """
    if program.mixup_alpha <= 0:
        return dict(batch)
    cached = {c.key: c for c in program.cached if c.key in batch}
    feats = sorted(k for k in batch if k.startswith("features/"))
    own = ("audio", "labels", "label_mask", "mask", "index", "view")
    extra = sorted(k for k in batch if k not in own and k not in feats and k not in cached)
    if extra or (feats and "audio" in batch):
        raise ValueError(f"mixup_alpha={program.mixup_alpha} with per-clip arrays {extra or feats} in the batch: "
                         "they would not match the mixed audio; set mixup_alpha=0")
    key = jax.random.fold_in(rng, 0x7FFFFFFF)
    out = dict(batch)
    for k in feats or ["audio"]:  # the same key: the same weights and permutation for every array
        out[k], labels = augment.mixup(key, batch[k], batch["labels"], alpha=program.mixup_alpha)
    for k, c in cached.items():
        x = jnp.asarray(batch[k], jnp.float32)
        if not c.logits:
            out[k] = augment.mixup(key, x, batch["labels"], alpha=program.mixup_alpha)[0]
            continue
        t, f32 = c.temperature, jnp.finfo(jnp.float32)
        p = jax.nn.sigmoid(x / t) if program.multi_label else jax.nn.softmax(x / t, axis=-1)
        p = augment.mixup(key, p, batch["labels"], alpha=program.mixup_alpha)[0]
        p = jnp.clip(p, f32.tiny, 1 - f32.eps if program.multi_label else None)
        out[k] = t * (jnp.log(p) - jnp.log1p(-p)) if program.multi_label else t * jnp.log(p)
    out["labels"] = labels
    return out


SPEC_AUGMENT_SALT = 0x7FFFFFFE  # fold_in constant of SpecAugment's key (mixup's is 0x7FFFFFFF)


def augment_features(program: Program, batch: Mapping[str, jax.Array], rng: jax.Array
                     ) -> dict[str, jax.Array]:
    """SpecAugment of the students' front-end outputs, as `forward` overrides (train step only).

    With `program.spec_augment` set (the config's `spec_augment` block, see
    `kdjax.augment.spec_augment_config`), each front-end output `[B, T, F]` that a trainable
    model reads (`program.augmented`) is computed from the (mixed) batch and masked by
    `kdjax.augment.spec_augment` with per-example bands drawn from
    `fold_in(fold_in(rng, SPEC_AUGMENT_SALT), i)`, `i` the key's position in
    `program.augmented`. Frozen teachers' inputs and cached teacher outputs are not touched;
    evaluation never calls this. Source: Park et al. 2019 (arXiv 1904.08779), section 2.

    Args:
      program: the Program.
      batch: the step's batch (after `mix`): `audio [B, N]` or `features/<key> [B, T, F]`.
      rng: the step's key (already folded with the step).

    Returns:
      `{"features.<key>": masked [B, T, F]}` (empty when SpecAugment is off).
    """
    if not program.spec_augment:
        return {}
    feats = program.features(batch.get("audio"), batch, set(program.augmented))
    key = jax.random.fold_in(rng, SPEC_AUGMENT_SALT)
    return {f"features.{k}": augment.spec_augment(jax.random.fold_in(key, i), feats[k],
                                                  **program.spec_augment)
            for i, k in enumerate(program.augmented)}
