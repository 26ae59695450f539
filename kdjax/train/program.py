"""Compile a config into a Program: named modules wired by key paths, front-ends, loss terms.

This file owns the *static* side of a recipe: `build_program(cfg, ...)` turns the `models`,
`teachers`, `frontends`, `losses`, `mixup_alpha` and `spec_augment` fields of a train/invert/cache
config into
one immutable `Program`. Running a Program (the forward pass over the namespace, the weighted
loss, mixup, `init_variables`) is kdjax.train.forward; the data flow from config to result is
drawn in docs/architecture.md.

A Program is a set of modules (trainable students/peers/heads and frozen teachers), each
reading its input from a key path of a namespace that the forward pass fills in dependency
order, and a weighted sum of loss terms reading their inputs from the same namespace.

Namespace (the paths modules and loss terms read):
  batch.<key>                       the input batch (audio, labels, label_mask, mask, joined
                                    per-clip arrays such as cached teacher embeddings, ...)
  features.<name>                   a front-end's output `[B, T, F]`, computed on device from
                                    `batch.audio`, or taken from `batch["features/<name>"]`
                                    when the batch carries it (synthetic mel-spectrograms)
  <model>.logits / <model>.feats.<key>            a trainable module's outputs
  teacher.<name>.logits / teacher.<name>.feats.<key> / teacher.<name>.bn
                                    a frozen module's outputs (`bn`: BatchNorm moments, when
                                    the module has `capture_bn=True`; see
                                    `kdjax.train.forward.capture_bn_moments`)
  peers.logits                      every deployed trainable model's logits `[K, B, C]`

Config (the `models` and `teachers` blocks of a train config):
  models.<name>   = {model, kw, frontend | input, deploy=True, capture_bn=False, pretrained}
  teachers.<name> = {model, kw, frontend | input, checkpoint, checkpoint_model,
                     train_mode=<cfg.teacher_train_mode>, capture_bn=False,
                     cached, cached_mixup_temperature=1.0}
`frontend` is a front-end config dict (its output is `features.<name>` for a model,
`features.teacher_<name>` for a teacher; identical front-ends are computed once) or the name
of an entry of the config's `frontends` block (`features.<that name>`). `input` is any key
path instead (e.g. `"student.feats.frames"` for a training-only head on a student's frames,
`"batch.embedding"` for a precomputed input). `deploy=False` marks a training-only module
(e.g. Temporal KD's attention head): it is trained but is not part of the deployed model, so
it is neither evaluated nor counted in the deployed parameter count. `pretrained` (trainable
models only) is a checkpoint path that the model's module loads after initialisation
(`kdjax.models.<model>.load_pretrained(path, params)`, e.g. a Hugging Face wav2vec 2.0
directory); keyword arguments the checkpoint implies (`pretrained_kwargs(path)`, e.g. its
architecture) come first and the config's `kw` override them.

Offline KD (teacher outputs computed once): `teachers.<name>.cached = {"logits": path,
"feats": {key: path}}` (either or both), each path a cache stage's array
(`"{stage:cache}/arrays/{split}/logits.npy"`, from kdjax.train.cache with
`cache.outputs = {"logits": "teacher.<name>.logits"}`). The teacher is
then not run in the step (nor its front-end, nor its checkpoint loaded): the arrays are joined to
the batch by clip index (kdjax.data.join.teacher_joins, batch keys `teacher/<name>/<output>`) and
the forward pass writes them at `teacher.<name>.<output>`, where loss terms and modules read them
as they read a live teacher's. Only the listed outputs exist; the teacher's other fields
(model, kw, checkpoint, ...) are kept so that the config still describes it and are not used.
Needs `data.train_crop="start"` (the cache stage computed each clip from its start). Without
mixup the step's loss and gradients equal the live-teacher step's (tests/train/test_offline_kd.py).
With mixup (`mixup_alpha > 0`) cached outputs cannot be recomputed on the mixed audio; they are
mixed with the audio's weights lambda and partner permutation (kdjax.train.forward.mix): features
linearly, logits as probabilities at `cached_mixup_temperature` T,
  p = lambda softmax(z_i / T) + (1 - lambda) softmax(z_j / T),   z' = T log p
(sigmoid instead of softmax for multi-label data, z' = T logit(p)), so a loss reading z' at the
same T (e.g. `kd_kl(temperature=T)`) gets exactly the mixed teacher probabilities, as EfficientAT's
offline ensemble KD mixes its stored teacher predictions (fschmid56/EfficientAT, ex_audioset.py).
This approximates the live teacher on the mixed audio, softmax(z(lambda x_i + (1 - lambda) x_j)/T).

Loss terms (`losses.<name>`, kauldron-style key-path inputs):
  {fn: a `kdjax.losses` function, weight: a number or {schedule: <optax schedule>, kw},
   inputs: [key paths of the positional arguments], kw: {constants},
   kw_inputs: {keyword: key path}}
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from kdjax import augment
from kdjax import frontends as frontends_lib
from kdjax import losses as losses_lib
from kdjax import models as models_lib
from kdjax.data import join as join_lib

NODE_FIELDS = {"model", "kw", "frontend", "input", "deploy", "capture_bn", "checkpoint",
               "checkpoint_model", "train_mode", "pretrained", "cached", "cached_mixup_temperature"}


# ---------------------------------------------------------------------------------------------
# Loss terms.


def _weight_fn(name: str, weight: Any) -> tuple[float | Callable[[jax.Array], jax.Array], bool]:
    """A term's weight: a number, or an optax schedule `{"schedule": "<optax fn>", "kw": {...}}`
    evaluated at the optimisation step (e.g. `linear_schedule` to ramp a KD term in)."""
    if isinstance(weight, Mapping):
        unknown = set(weight) - {"schedule", "kw"}
        sched = getattr(optax, str(weight.get("schedule")), None)
        if unknown or sched is None:
            raise ValueError(
                f"losses.{name}.weight={dict(weight)!r}: expected a number or "
                "{'schedule': <optax schedule name, e.g. 'linear_schedule'>, 'kw': {...}}"
            )
        return sched(**dict(weight.get("kw") or {})), True
    try:
        return float(weight), False
    except (TypeError, ValueError):
        raise ValueError(f"losses.{name}.weight={weight!r}: expected a number or a schedule dict") from None


@dataclasses.dataclass(frozen=True, eq=False)
class LossTerm:
    """One weighted loss term of a recipe: `weight * fn(*inputs, **kw, **kw_inputs)`.

    Attributes:
      name: the term's name (metrics `loss/<name>`).
      fn: a `kdjax.losses` function.
      weight: a float, or a schedule `step -> weight` (see `_weight_fn`).
      inputs: key paths of the positional arguments.
      kw: constant keyword arguments.
      kw_inputs: keyword arguments taken from key paths (e.g. `{"mask": "batch.mask"}`).
      scheduled: whether `weight` is a schedule.
    """

    name: str
    fn: Callable[..., jax.Array]
    weight: Any
    inputs: tuple[str, ...]
    kw: Mapping[str, Any]
    kw_inputs: Mapping[str, str]
    scheduled: bool = False

    @classmethod
    def from_config(cls, name: str, cfg: Mapping[str, Any]) -> LossTerm:
        """Builds a term from its config dict.

        Raises:
          ValueError: an unknown field, function or weight form (names `losses.<name>.<field>`).
        """
        unknown = set(cfg) - {"fn", "weight", "inputs", "kw", "kw_inputs"}
        if unknown:
            raise ValueError(f"losses.{name}: unknown field(s) {sorted(unknown)}")
        fn_name = cfg.get("fn")
        fn = getattr(losses_lib, str(fn_name), None)
        if fn is None or not callable(fn):
            raise ValueError(f"losses.{name}.fn={fn_name!r}: no such function in kdjax.losses")
        if not cfg.get("inputs"):
            raise ValueError(f"losses.{name}.inputs: expected a list of key paths")
        weight, scheduled = _weight_fn(name, cfg.get("weight", 1.0))
        return cls(name=name, fn=fn, weight=weight, inputs=tuple(cfg["inputs"]),
                   kw=dict(cfg.get("kw") or {}), kw_inputs=dict(cfg.get("kw_inputs") or {}),
                   scheduled=scheduled)




# ---------------------------------------------------------------------------------------------
# Modules and the program.


@dataclasses.dataclass(frozen=True, eq=False)
class Node:
    """One module of the program.

    Attributes:
      name: config name (`models.<name>` or `teachers.<name>`).
      path: namespace path of its outputs (`<name>` or `teacher.<name>`).
      module: the Flax module.
      input: key path of its input.
      trainable: a trainable model (its variables are in the train state) or a frozen one.
      deploy: part of the deployed/evaluated model (False: a training-only module).
      train_mode: run with `train=True` (BatchNorm batch statistics, dropout); trainable
        modules always train; frozen modules default to eval mode.
      capture_bn: also return the moments of every BatchNorm layer's input as `<path>.bn`.
      pretrained: a checkpoint path whose parameters replace the initial ones
        (`kdjax.train.forward.init_variables` calls `load_pretrained(pretrained, params)`).
      load_pretrained: the model module's `load_pretrained` (set with `pretrained`).
    """

    name: str
    path: str
    module: nn.Module
    input: str
    trainable: bool
    deploy: bool = True
    train_mode: bool = False
    capture_bn: bool = False
    pretrained: str | None = None
    load_pretrained: Callable[[str, Any], Any] | None = None


@dataclasses.dataclass(frozen=True)
class CachedOutput:
    """One stored output of a cached (offline) teacher, read from the batch instead of computed.

    Attributes:
      path: its namespace path (`teacher.<name>.logits`, `teacher.<name>.feats.<key>`).
      key: the batch key that carries it (`teacher/<name>/<output>`, kdjax.data.join).
      logits: logits (mixed as probabilities under mixup) rather than features (mixed linearly).
      temperature: T of the probabilities that mixup mixes (`cached_mixup_temperature`).
    """

    path: str
    key: str
    logits: bool
    temperature: float = 1.0


@dataclasses.dataclass(frozen=True, eq=False)
class Program:
    """Everything static about a recipe's step (hashable by identity for jit).

    Attributes:
      nodes: the modules in dependency order.
      frontends: `features.<key>` -> front-end function `wave [B, N] -> [B, T, F]`.
      terms: the loss terms.
      mixup_alpha: > 0 mixes waveforms and labels (Beta(alpha, alpha)) in the step before the
        front-ends, so every module sees the same mixed view ("consistent teaching", Beyer et
        al. CVPR 2022).
      multi_label: labels are multi-hot (tagging): train metrics are micro-F1 at 0.5, not
        argmax accuracy.
      cached: outputs of cached (offline) teachers, read from the batch (module docstring).
      spec_augment: `kdjax.augment.spec_augment` keywords of the config's `spec_augment` block
        (None: off); applied in the train step to the front-end outputs in `augmented`
        (kdjax.train.forward.augment_features), never at evaluation.
      augmented: the `features.<key>` keys SpecAugment masks: the front-end outputs that
        trainable models read (the student's input; frozen teachers' inputs untouched).
    """

    nodes: tuple[Node, ...]
    frontends: Mapping[str, Callable[[jax.Array], jax.Array]]
    terms: tuple[LossTerm, ...]
    mixup_alpha: float = 0.0
    multi_label: bool = False
    cached: tuple[CachedOutput, ...] = ()
    spec_augment: Mapping[str, Any] | None = None
    augmented: tuple[str, ...] = ()

    # Named after the config's two blocks (`models.<name>`, `teachers.<name>`).
    @property
    def models(self) -> dict[str, nn.Module]:
        """Trainable modules by name (`models.<name>`, including training-only ones)."""
        return {n.name: n.module for n in self.nodes if n.trainable}

    @property
    def teachers(self) -> dict[str, nn.Module]:
        """Frozen modules by name (`teachers.<name>`)."""
        return {n.name: n.module for n in self.nodes if not n.trainable}

    @property
    def deployed(self) -> tuple[str, ...]:
        """Names of the trainable, deployed models (the ones evaluated and counted)."""
        return tuple(n.name for n in self.nodes if n.trainable and n.deploy)

    def features(self, audio: jax.Array | None, batch: Mapping[str, Any] | None = None,
                 needed: set[str] | None = None) -> dict[str, jax.Array]:
        """Front-end outputs by key: from `batch["features/<key>"]` when present, else computed
        from `audio` (each distinct front-end function once).

        Raises:
          ValueError: a front-end is needed but the batch has neither audio nor its features.
        """
        batch = batch or {}
        cache: dict[int, jax.Array] = {}
        out = {}
        for key, fe in self.frontends.items():
            if needed is not None and key not in needed:
                continue
            if f"features/{key}" in batch:
                out[key] = batch[f"features/{key}"]
                continue
            if audio is None:
                raise ValueError(
                    f"front-end features.{key} needs batch.audio or batch['features/{key}']; "
                    f"the batch has {sorted(batch)}"
                )
            if id(fe) not in cache:
                cache[id(fe)] = fe(audio)
            out[key] = cache[id(fe)]
        return out

    def subgraph(self, names: tuple[str, ...]) -> tuple[Node, ...]:
        """The nodes needed to compute the named nodes (themselves and their inputs), in order."""
        by_path = {n.path: n for n in self.nodes}
        want: set[str] = set()

        def visit(node: Node):
            if node.path in want:
                return
            want.add(node.path)
            dep = _input_node(node.input, by_path)
            if dep is not None:
                visit(dep)

        for n in self.nodes:
            if n.name in names and n.trainable:
                visit(n)
        return tuple(n for n in self.nodes if n.path in want)


def _input_node(path: str, by_path: Mapping[str, Node]) -> Node | None:
    """The node whose outputs `path` reads (longest matching prefix), or None (batch/features)."""
    parts = path.split(".")
    for k in range(len(parts), 0, -1):
        if ".".join(parts[:k]) in by_path:
            return by_path[".".join(parts[:k])]
    return None


# ---------------------------------------------------------------------------------------------
# Building a program from a config.


def _frontend_fns(entries: Mapping[str, Any], sample_rate: int) -> dict[str, Any]:
    """One front-end function per `features.<key>` entry; identical configs share one function.

    A front-end given as `{"preset": name, ...}` is expanded first, so its sample rate is
    checked too.

    Raises:
      ValueError: a front-end's sample rate differs from the data's (names the entry).
    """
    by_key: dict[str, Any] = {}
    out = {}
    for name, fe_cfg in entries.items():
        fe = dict(fe_cfg)
        if "preset" in fe:
            preset = fe.pop("preset")
            if preset not in frontends_lib.PRESETS:
                raise ValueError(f"{name}.frontend.preset={preset!r}: known presets {sorted(frontends_lib.PRESETS)}")
            fe = dict(frontends_lib.PRESETS[preset]) | fe
        sr = fe.get("sample_rate")
        if sr is not None and int(sr) != int(sample_rate):
            raise ValueError(f"{name}.frontend.sample_rate={sr} but the data is {sample_rate} Hz")
        key = json.dumps(fe, sort_keys=True, default=str)
        if key not in by_key:
            by_key[key] = frontends_lib.make_frontend(fe)
        out[name] = by_key[key]
    return out


def build_program(cfg: Any, num_classes: int, sample_rate: int, *, multi_label: bool = False) -> Program:
    """The Program of a train/invert/cache config (see module docstring for the fields).

    `cfg.compute_dtype` ("float32" default, "bfloat16"): mixed precision. "bfloat16" is passed
    to every model as `dtype=`: computation in bfloat16; parameters, BatchNorm statistics and
    optimiser state stay float32; models return float32 logits/feats, so losses are float32.

    Raises:
      ValueError: unknown compute_dtype, node field, front-end name, input path that no node,
        front-end or batch provides, a dependency cycle, a deployed model fed by a
        training-only module, or `pretrained` on a teacher or on a model whose module has no
        `load_pretrained`.
      FileNotFoundError: a `pretrained` checkpoint the module cannot find (its own message).
    """
    dtype = str(cfg.get("compute_dtype", "float32"))
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"compute_dtype={dtype!r}: expected 'float32' or 'bfloat16'")
    extra = {} if dtype == "float32" else {"dtype": jnp.dtype(dtype)}
    named_fe = dict(cfg.get("frontends", {}) or {})
    fe_entries: dict[str, Any] = {k: v for k, v in named_fe.items()}
    default_train_mode = bool(cfg.get("teacher_train_mode", False))
    raw = []
    cached: list[CachedOutput] = []
    for block, trainable in (("models", True), ("teachers", False)):
        for name, m in (cfg.get(block, {}) or {}).items():
            unknown = set(m) - NODE_FIELDS
            if unknown:
                raise ValueError(f"{block}.{name}: unknown field(s) {sorted(unknown)}; fields: {sorted(NODE_FIELDS)}")
            path = name if trainable else f"teacher.{name}"
            if m.get("cached"):
                if trainable:
                    raise ValueError(f"models.{name}.cached: only frozen teachers can be cached")
                temperature = float(m.get("cached_mixup_temperature", 1.0))
                if not temperature > 0:
                    raise ValueError(
                        f"teachers.{name}.cached_mixup_temperature={temperature}: expected > 0")
                cached += [CachedOutput(path=f"{path}.{out}", key=join_lib.teacher_key(name, out),
                                        logits=out == "logits", temperature=temperature)
                           for out in join_lib.cached_outputs(name, m)]
                continue
            fe = m.get("frontend")
            if m.get("input"):
                if fe:
                    raise ValueError(f"{block}.{name}: give either 'frontend' or 'input', not both")
                inp = str(m.input)
            elif isinstance(fe, str):
                if fe not in named_fe:
                    raise ValueError(f"{block}.{name}.frontend={fe!r}: no such entry in frontends {sorted(named_fe)}")
                inp = f"features.{fe}"
            elif fe:
                key = name if trainable else f"teacher_{name}"
                fe_entries[key] = fe
                inp = f"features.{key}"
            else:
                raise ValueError(f"{block}.{name}: needs a 'frontend' or an 'input' key path")
            kw = dict(m.get("kw", {}) or {})
            pretrained, loader = m.get("pretrained") or None, None
            if pretrained:
                pretrained = os.path.expanduser(str(pretrained))
                if not trainable:
                    raise ValueError(
                        f"teachers.{name}.pretrained: frozen teachers load kdjax checkpoints "
                        f"(teachers.{name}.checkpoint); fine-tune the pretrained model in a train "
                        "stage (models.<name>.pretrained) and point the teacher at that stage")
                try:
                    loader = models_lib.pretrained_loader(m.model)
                except ValueError as e:
                    raise ValueError(f"models.{name}.pretrained={pretrained!r}: {e}") from None
                kw = models_lib.pretrained_kwargs(m.model, pretrained) | kw
            module = models_lib.build(m.model, num_classes=num_classes, **(kw | extra))
            raw.append(Node(
                name=name, path=path, module=module, input=inp, trainable=trainable,
                deploy=bool(m.get("deploy", True)) if trainable else False,
                train_mode=bool(m.get("train_mode", default_train_mode)) if not trainable else True,
                capture_bn=bool(m.get("capture_bn", False)),
                pretrained=pretrained, load_pretrained=loader,
            ))
    # Dependency order (a node after the node its input reads).
    by_path = {n.path: n for n in raw}
    order: list[Node] = []
    state: dict[str, int] = {}

    def visit(n: Node, chain: tuple[str, ...]):
        if state.get(n.path) == 2:
            return
        if state.get(n.path) == 1:
            raise ValueError(f"modules form a cycle through their inputs: {' -> '.join(chain + (n.path,))}")
        state[n.path] = 1
        dep = _input_node(n.input, by_path)
        if dep is not None:
            if n.trainable and n.deploy and dep.trainable and not dep.deploy:
                raise ValueError(f"models.{n.name} (deployed) reads {n.input!r} of the training-only models.{dep.name}")
            visit(dep, chain + (n.path,))
        elif not n.input.startswith(("batch.", "features.")) and not any(
                n.input == c.path or n.input.startswith(c.path + ".") for c in cached):
            raise ValueError(f"{n.path}.input={n.input!r}: expected batch.<key>, features.<key> or a module's outputs")
        state[n.path] = 2
        order.append(n)

    for n in raw:
        visit(n, ())
    terms = tuple(LossTerm.from_config(n, t) for n, t in (cfg.get("losses", {}) or {}).items())
    spec = augment.spec_augment_config(cfg.get("spec_augment"))
    augmented = _augmented_features(order) if spec else ()
    return Program(
        nodes=tuple(order),
        frontends=_frontend_fns(fe_entries, sample_rate),
        terms=terms,
        mixup_alpha=float(cfg.get("mixup_alpha", 0.0)),
        multi_label=bool(multi_label),
        cached=tuple(cached),
        spec_augment=spec,
        augmented=augmented,
    )


def _augmented_features(nodes: list[Node]) -> tuple[str, ...]:
    """The front-end keys SpecAugment masks (`spec_augment`): those trainable modules read.

    Raises:
      ValueError: no trainable module reads a front-end output, or a frozen (live) teacher reads
        one of them too (its input would be masked as well; give it its own front-end).
    """
    keys = tuple(dict.fromkeys(n.input.split(".", 1)[1] for n in nodes
                               if n.trainable and n.input.startswith("features.")))
    if not keys:
        raise ValueError("spec_augment: no trainable model reads a front-end output "
                         "(features.<key>) to mask")
    shared = [n.path for n in nodes if not n.trainable and n.input.startswith("features.")
              and n.input.split(".", 1)[1] in keys]
    if shared:
        raise ValueError(f"spec_augment: the frozen {shared} read the students' front-end output "
                         f"features {list(keys)}, which SpecAugment masks; give the teacher its "
                         "own frontend")
    return keys
