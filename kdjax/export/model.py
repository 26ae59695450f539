"""The deployed model of a kdjax run, rebuilt for export: raw audio `[B, N]` -> logits, probabilities.

`load_run(workdir, config)` finds the run's config (a staged config's stage run is matched by
its folder), its deployed model, front-end, sample rate, clip length and class names, and the
model's best-on-validation variables (`kdjax.train.checkpoint.load_best_variables`).
`serving_fn(run)` is the function that is exported: the log-mel (or other) front-end and the
model in inference mode (BatchNorm running statistics, no dropout) with the same parameters,
reformulated for converters where that keeps the math:
  - `conv_impl="xla"` (plain `lax.conv`) for models that have the option: the CPU default
    "matmul" (im2col) is a training-speed device; both compute the same convolution.
  - the front-end's STFT as a matmul with a windowed DFT basis over frames cut by strided
    slices (`stft_impl="dft"`, the default: no FFT, complex or gather ops, so ONNX gets a dynamic
    batch and TFLite needs no RFFT kernel); "dft16" stores the basis in float16; "rfft" keeps
    the training front-end's rfft (smaller files: the basis is n_fft x ~n_fft floats).
  - a symbolic batch dimension is served by mapping the batch-1 function over rows
    (`jax.vmap`), so the front-end's row chunking only ever sees one row.
`reference_fn(run)` is the model exactly as training evaluated it (the run's front-end and
`conv_impl`): the parity reference.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from kdjax import frontends as frontends_lib

STFT_IMPLS = ("rfft", "dft", "dft16")


def _first_attr(name: str, modules: tuple[str, ...]) -> Any:
    """`name` from the first of `modules` that defines it (kdjax.train is being reorganised)."""
    for m in modules:
        try:
            mod = importlib.import_module(m)
        except ImportError:
            continue
        if hasattr(mod, name):
            return getattr(mod, name)
    raise ImportError(f"none of {modules} defines {name!r}")


def load_config(
    spec: str | ml_collections.ConfigDict | None, workdir: str
) -> ml_collections.ConfigDict:
    """The run's config: `spec` ("configs/x.py[:arg]" or a ConfigDict) or `<workdir>/config.json`.

    Raises:
      FileNotFoundError: no spec and no config.json in the workdir, or a missing config file.
    """
    if isinstance(spec, ml_collections.ConfigDict):
        return spec
    if spec is None:
        path = os.path.join(workdir, "config.json")
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"{workdir}: no config.json; pass --config=<the config file the run was trained with, "
                "e.g. configs/fsdd.py>"
            )
        with open(path) as f:
            return ml_collections.ConfigDict(json.load(f))
    path, _, arg = str(spec).partition(":")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path!r} not found")
    root = os.path.dirname(os.path.dirname(os.path.abspath(path)))  # `from configs import common`
    if root not in sys.path:
        sys.path.insert(0, root)
    mod_spec = importlib.util.spec_from_file_location("_kdjax_export_config", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    return mod.get_config(arg) if arg else mod.get_config()


def _run_config(
    cfg: ml_collections.ConfigDict, workdir: str
) -> tuple[ml_collections.ConfigDict, str]:
    """(the run's own config, its stage name or "") for a run folder of `cfg`.

    A staged config (`stages`) is matched by the run folder: `<root>/<stage>` or
    `<root>/<stage>/seed<k>` for a root one or two levels up.

    Raises:
      ValueError: no stage run of the config lives in `workdir`.
    """
    if "stages" not in cfg:
        return cfg, ""
    stage_runs = _first_attr("stage_runs", ("kdjax.train.stages",))
    wd = os.path.abspath(workdir)
    for root in (os.path.dirname(wd), os.path.dirname(os.path.dirname(wd))):
        for name, _, run_wd, c in stage_runs(cfg, root, names=list(cfg.stages)):
            if os.path.abspath(run_wd) == wd:
                return c, name
    raise ValueError(
        f"--workdir {workdir}: not a stage run of this config (expected <root>/<stage> or "
        f"<root>/<stage>/seed<k>, stages {list(cfg.stages)})"
    )


@dataclasses.dataclass(frozen=True, eq=False)
class Run:
    """A trained run's deployed model and everything the exported file needs.

    Attributes:
      workdir: the run folder (absolute). stage: its stage name in a staged config, or "".
      name: the model's name in the run (`models.<name>`).
      config: the run's own train config.
      model: `{"model": zoo name, "kw": keyword arguments}`.
      module: the Flax module as trained.
      variables: `{"params", "batch_stats"}` (host arrays) of the best validation step.
      frontend: the expanded front-end config (`name`, sample_rate Hz, sizes in samples, ...).
      sample_rate: Hz. clip_samples: N, samples per clip (= clip_seconds * sample_rate).
      class_names: `[C]`.
      sources: the run's `{"train", "validation", "test"}` data sources (None where unset).
    """

    workdir: str
    stage: str
    name: str
    config: ml_collections.ConfigDict
    model: dict[str, Any]
    module: Any
    variables: dict[str, Any]
    frontend: dict[str, Any]
    sample_rate: int
    clip_samples: int
    class_names: tuple[str, ...]
    sources: dict[str, Any]

    @property
    def num_params(self) -> int:
        """Trainable parameters of the deployed model."""
        return int(sum(np.size(x) for x in jax.tree.leaves(self.variables["params"])))


def _expand_frontend(fe: Any, named: Mapping[str, Any], where: str) -> dict[str, Any]:
    if isinstance(fe, str):
        if fe not in named:
            raise ValueError(f"{where}.frontend={fe!r}: no such entry in frontends {sorted(named)}")
        fe = named[fe]
    fe = dict(fe.to_dict() if hasattr(fe, "to_dict") else fe)
    if "preset" in fe:
        fe = dict(frontends_lib.PRESETS[fe.pop("preset")]) | fe
    return fe


def load_run(
    workdir: str, config: str | ml_collections.ConfigDict | None = None, model: str | None = None
) -> Run:
    """Loads a finished (or checkpointed) kdjax run's deployed model for export.

    Args:
      workdir: the run folder (holds `ckpt/`), e.g. `workdirs/fsdd/kd/seed0`.
      config: the config it was trained with ("configs/fsdd.py[:arg]" or a ConfigDict; a
        staged config's stage run is found from the folder); default `<workdir>/config.json`.
      model: the deployed model's name (default: `eval_model`, else the first deployed model).

    Returns:
      A `Run`.

    Raises:
      FileNotFoundError: no config / no checkpoint. ValueError: the folder is no run of the
        config, the model is unknown or not deployed, or it does not read a front-end of the
        audio (e.g. a head on another module's features, which has no raw-audio input).
      DatasetNotFoundError: the run's data (needed for its sample rate, classes and test split).
    """
    workdir = os.path.abspath(workdir)
    cfg, stage = _run_config(load_config(config, workdir), workdir)
    models = dict(cfg.get("models", {}) or {})
    deployed = [n for n, m in models.items() if m.get("deploy", True)]
    name = model or cfg.get("eval_model") or (deployed[0] if deployed else None)
    if name not in deployed:
        raise ValueError(f"--model={name!r}: the run's deployed models are {deployed}")
    m = models[name]
    if m.get("input") or not m.get("frontend"):
        raise ValueError(
            f"models.{name} reads {m.get('input')!r}, not a front-end of the audio: "
            "only models on raw audio can be exported with their front-end"
        )
    fe = _expand_frontend(m.frontend, dict(cfg.get("frontends", {}) or {}), f"models.{name}")
    split_sources = _first_attr("split_sources", ("kdjax.train.setup", "kdjax.train.loop"))
    sources = split_sources(cfg, workdir)
    src = sources["test"] or sources["validation"] or sources["train"]
    sr, num_classes = int(src.sample_rate), int(src.num_classes)
    if getattr(src, "multi_label", False):
        raise ValueError(
            f"{workdir}: multi-label runs are not supported by the export (probabilities "
            "would be sigmoids, the parity check top-1 classes)"
        )
    from kdjax import models as models_lib
    from kdjax.train.checkpoint import load_best_variables

    kw = dict(m.get("kw", {}) or {})
    module = models_lib.build(m.model, num_classes=num_classes, **kw)
    variables = load_best_variables(workdir, name)
    return Run(
        workdir=workdir,
        stage=stage,
        name=name,
        config=cfg,
        model={"model": str(m.model), "kw": kw},
        module=module,
        variables=jax.tree.map(np.asarray, variables),
        frontend=fe,
        sample_rate=sr,
        clip_samples=int(round(float(cfg.data.clip_seconds) * sr)),
        class_names=tuple(str(c) for c in src.class_names),
        sources=sources,
    )


def export_frontend_config(run: Run, stft_impl: str = "dft") -> dict[str, Any]:
    """The front-end config of the exported model: the run's, with `stft_impl` when not "rfft".

    "dft" / "dft16": the STFT as a matmul with a windowed DFT basis (float32 / float16 basis)
    over frames cut by strided slices (`kdjax.frontends` options `stft_impl="dft"`,
    `framing="slices"`, `dft_dtype`).

    Raises:
      ValueError: unknown `stft_impl`, or one the installed `kdjax.frontends` does not offer.
    """
    if stft_impl not in STFT_IMPLS:
        raise ValueError(f"stft_impl={stft_impl!r}: expected one of {STFT_IMPLS}")
    fe = dict(run.frontend)
    if stft_impl != "rfft":
        # Framing by strided slices, not a gather: TFLite does not convert the gather with a
        # batch dimension and ONNX gets a dynamic batch.
        fe["stft_impl"], fe["framing"] = "dft", "slices"
        if stft_impl == "dft16":
            fe["dft_dtype"] = "float16"
        try:
            frontends_lib.make_frontend(fe)
        except ValueError as e:
            raise ValueError(
                f"stft_impl={stft_impl!r}: the front-end does not offer it ({e})"
            ) from None
    return fe


def _export_module(run: Run) -> Any:
    """The module with `conv_impl="xla"` where it has that field (same parameters)."""
    if "conv_impl" in getattr(run.module, "__dataclass_fields__", {}):
        return run.module.clone(conv_impl="xla")
    return run.module


def serving_fn(
    run: Run, *, stft_impl: str = "dft", batch_rows: str = "auto"
) -> Callable[[jax.Array], tuple[jax.Array, jax.Array]]:
    """The exported function: `wave [B, N] float32 -> (logits [B, C], probabilities [B, C])`.

    N is the run's clip length in samples at its sample rate (Hz); probabilities are
    `softmax(logits)`. The batch B may be symbolic (`jax.export.symbolic_shape("b, N")`):
    `batch_rows="direct"` traces the front-end and model with it, "map" maps the batch-1
    computation over rows (`jax.vmap`; for front-ends whose row chunking compares the batch with
    a constant; jax2onnx cannot convert it: its BatchNorm has no vmap rule), "auto" (default)
    is "direct" where the front-end traces with a symbolic batch, else "map".

    Raises:
      ValueError: as `export_frontend_config`; a wave that is not `[B, N]` (at trace time).
    """
    fe = frontends_lib.make_frontend(export_frontend_config(run, stft_impl))
    module = _export_module(run)
    variables = run.variables
    n = run.clip_samples

    def rows(wave: jax.Array) -> jax.Array:
        logits, _ = module.apply(variables, fe(wave), train=False)
        return logits

    if batch_rows not in ("auto", "direct", "map"):
        raise ValueError(f"batch_rows={batch_rows!r}: expected 'auto', 'direct' or 'map'")
    mode = batch_rows
    if (
        mode == "auto"
    ):  # does the front-end trace with a symbolic batch (kdjax.frontends >= the split)?
        try:
            jax.eval_shape(
                rows, jax.ShapeDtypeStruct(jax.export.symbolic_shape(f"b, {n}"), jnp.float32)
            )
            mode = "direct"
        except Exception:  # noqa: BLE001 -- e.g. InconclusiveDimensionOperation in row chunking
            mode = "map"

    def fn(wave: jax.Array) -> tuple[jax.Array, jax.Array]:
        if wave.ndim != 2 or (not jax.export.is_symbolic_dim(wave.shape[1]) and wave.shape[1] != n):
            raise ValueError(
                f"wave: expected [B, {n}] samples at {run.sample_rate} Hz, got {wave.shape}"
            )
        wave = wave.astype(jnp.float32)
        if jax.export.is_symbolic_dim(wave.shape[0]) and mode == "map":
            logits = jax.vmap(lambda w: rows(w[None])[0])(wave)
        else:
            logits = rows(wave)
        return logits, jax.nn.softmax(logits, axis=-1)

    return fn


def reference_fn(run: Run) -> Callable[[jax.Array], jax.Array]:
    """The model as training evaluated it (the run's front-end and module): wave `[B, N]` -> logits `[B, C]`."""
    fe = frontends_lib.make_frontend(run.frontend)
    variables = run.variables

    @jax.jit
    def fn(wave: jax.Array) -> jax.Array:
        logits, _ = run.module.apply(variables, fe(wave), train=False)
        return logits

    return fn
