"""A recipe's own pictures: the picture hooks of kdjax.report.

A staged config may name the pictures its report draws beside the standard ones:

    c.report_pictures = [dict(kind="attention_rollout", arms="*_l050", clips=4)]
    c.report_pictures = [dict(kind="inverted_mels")]
    c.report_pictures = []   # none

`kind` is a key of `KINDS`; the other fields are that kind's keyword arguments. Without the
field, `default_specs` picks them from the stages: `attention_rollout` when a stage of `run`
has an `attention_head` model (Temporal KD), `inverted_mels` when one is an `invert` stage
(FRAMI, DeepInversion). Each kind
reads what it needs from the workdir (checkpoints, cached arrays, synthetic shards) and raises
`Unavailable` when the workdir does not hold it (a results folder keeps no checkpoints, a
summary.json no run folders); the report then says so in one line instead of drawing.

Kinds:
  attention_rollout  Temporal KD (Ahmed et al. 2023): per KD arm (a stage with an
                     `attention_head` model), for a few test clips, the clip's log-mel and, over
                     the student's frames, the teacher's rolled-out attention target (the cached
                     rollout row of `data.join[target]`, linearly interpolated to the student's
                     T with half-pixel centres and renormalised: exactly the loss's target,
                     kdjax.losses.temporal_attention_kd) against the student head's softmax
                     weights (first seed/fold's last checkpoint).
  inverted_mels      FRAMI / DeepInversion (Kang et al. 2023; Yin et al. 2020): one inverted
                     log-mel spectrogram per class from each invert stage's synthetic shards
                     (kdjax.data.synthetic; the first seed's set when inversions repeat).

The drawing functions (`attention_figure`, `mel_grid`, `diversity_bars`) take arrays, so a
results script can draw the same pictures from what it computed (configs/results/frami).
"""

from __future__ import annotations

import fnmatch
import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from kdjax.report.figures import _figure, _save


class Unavailable(Exception):
    """The workdir does not hold what a picture needs (the message names what is missing)."""


def _config(config: Mapping[str, Any] | None, kind: str):
    import ml_collections

    if isinstance(config, ml_collections.ConfigDict):
        return config
    if not config or not config.get("stages"):
        raise Unavailable(
            f"{kind}: needs the staged recipe config (--config configs/<recipe>.py[:args])"
        )
    return ml_collections.ConfigDict(dict(config))


def _first_run(cfg, workdir: str, stage: str):
    """(run folder, resolved stage config) of a stage's first seed/fold (kdjax.train.stage_list)."""
    from kdjax.train.stage_list import stage_runs

    _, _, wd, c = stage_runs(cfg, workdir, names=[stage])[0]
    return wd, c


def _keyword_clips(class_names: Sequence[str], labels: np.ndarray, n: int) -> list[int]:
    """`n` clip indices evenly spaced over the clips whose class is not a filler class
    (`_silence_`, `_unknown_`: names starting with "_")."""
    keep = [i for i, y in enumerate(labels) if not str(class_names[int(y)]).startswith("_")]
    keep = keep or list(range(len(labels)))
    return [
        keep[k] for k in np.unique(np.linspace(0, len(keep) - 1, min(n, len(keep))).astype(int))
    ]


def attention_rollout_data(
    workdir: str,
    config: Mapping[str, Any],
    arm: str,
    *,
    target: str = "rollout",
    clips: int | Sequence[int] = 4,
) -> dict[str, Any]:
    """The arrays `attention_figure` draws for one Temporal KD arm.

    Args:
      workdir: the staged workdir (the arm's first seed/fold needs its `ckpt/`).
      config: the staged config as a dict (config.json).
      arm: a stage whose models include the training-only `attention_head` (`head`).
      target: the `data.join` key of the cached teacher target (default "rollout").
      clips: how many test clips (evenly spaced over the non-filler classes) or their indices.

    Returns:
      `{"arm", "run", "clips" [K], "mel" [K, T_in, F] (log-mel, dB), "target" [K, T],
      "weights" [K, T] (the head's softmax weights), "pred" [K], "truth" [K] (class names),
      "seconds" (clip length, s), "keyword" [K, 2] (keyword start/end in s, or None)}`.

    Raises:
      Unavailable: no checkpoint of the arm, or no cached target file (names the path).
      ValueError: the arm has no attention head or no `data.join[target]`.
    """
    import jax

    from kdjax.data.audio import fit_length
    from kdjax.losses import time_alignment_matrix
    from kdjax.train.checkpoint import load_last_variables
    from kdjax.train.forward import forward
    from kdjax.train.program import build_program
    from kdjax.train.setup import data_source

    cfg = _config(config, "attention_rollout")
    run, c = _first_run(cfg, workdir, arm)
    head = [n for n, m in c.models.items() if m.get("model") == "attention_head"]
    if not head:
        raise ValueError(
            f"report_pictures attention_rollout: stage {arm!r} has no attention_head model"
        )
    join = dict(c.data.get("join") or {})
    if target not in join:
        raise ValueError(
            f"report_pictures attention_rollout: stages.{arm}.data.join has no {target!r}; "
            f"it has {sorted(join)}"
        )
    tpath = str(join[target]).replace("{split}", c.data.test_split)
    if not os.path.isdir(os.path.join(run, "ckpt")):
        raise Unavailable(f"no checkpoint {os.path.join(run, 'ckpt')}")
    if not os.path.isfile(tpath):
        raise Unavailable(f"no cached target {tpath}")
    src = data_source(c.data, c.data.test_split)
    labels = (
        np.array([int(np.argmax(r.labels)) for r in src.records])
        if hasattr(src, "records")
        else np.array([int(np.argmax(src[i]["labels"])) for i in range(len(src))])
    )
    idx = (
        list(clips)
        if not isinstance(clips, int)
        else _keyword_clips(src.class_names, labels, clips)
    )
    s = int(round(c.data.clip_seconds * src.sample_rate))
    audio = np.stack([fit_length(np.asarray(src[i]["audio"], np.float32), s) for i in idx])
    p = build_program(c, src.num_classes, src.sample_rate)
    variables = {n: load_last_variables(run, n) for n in p.models}
    ns, _ = jax.jit(lambda v, b: forward(p, v, b, jax.random.key(0), train=False))(
        variables, {"audio": audio}
    )
    w = np.asarray(ns[head[0]]["feats"]["weights"], np.float64)  # [K, T]
    rows = np.load(tpath)[idx].astype(np.float64)  # [K, N']
    rows = rows / rows.sum(-1, keepdims=True)
    align = np.asarray(time_alignment_matrix(rows.shape[1], w.shape[1], "interpolate"), np.float64)
    tgt = rows @ align.T
    student = next(n for n in p.models if n != head[0])
    feats = ns["features"][student] if student in ns.get("features", {}) else None
    keyword = None
    if hasattr(src, "placement"):  # noisy Speech Commands: where the keyword was placed
        keyword = [
            [
                src.placement(i)[0] / src.sample_rate,
                (src.placement(i)[0] + int(src.records[i].meta.get("num_samples", src.sample_rate)))
                / src.sample_rate,
            ]
            for i in idx
        ]
    return {
        "arm": arm,
        "run": run,
        "clips": idx,
        "mel": None if feats is None else np.asarray(feats),
        "target": tgt / tgt.sum(-1, keepdims=True),
        "weights": w,
        "pred": [src.class_names[k] for k in np.asarray(ns[student]["logits"]).argmax(-1)],
        "truth": [src.class_names[labels[i]] for i in idx],
        "seconds": s / src.sample_rate,
        "keyword": keyword,
    }


def attention_figure(d: Mapping[str, Any], title: str):
    """Two rows per clip column: the log-mel spectrogram (time in s, mel bin), and the
    teacher's interpolated rollout target vs the student head's weights over the student's
    frames (x: frame centres in s). `d` is `attention_rollout_data`'s dict."""
    k, t = d["weights"].shape
    fig = _figure((3.2 * k, 5.0), layout="constrained")
    axes = fig.subplots(2, k, squeeze=False, sharex="col")
    dur = d["seconds"]
    for j in range(k):
        ax = axes[0, j]
        if d["mel"] is not None:
            mel = d["mel"][j]
            ax.imshow(
                mel.T, origin="lower", aspect="auto", extent=[0, dur, 0, mel.shape[1]], cmap="magma"
            )
        if d["keyword"]:
            ax.axvspan(*d["keyword"][j], color="cyan", alpha=0.18)
        ax.set_title(
            f"test clip {d['clips'][j]}: '{d['truth'][j]}'\n(predicted '{d['pred'][j]}')",
            fontsize=8,
        )
        ax.set_ylabel("mel bin" if j == 0 else "", fontsize=8)
        ax.tick_params(labelsize=7)
        ax = axes[1, j]
        tt = (np.arange(t) + 0.5) * dur / t
        ax.plot(tt, d["target"][j], label="teacher rollout (target)", color="k")
        ax.plot(tt, d["weights"][j], label="student head", color="C3")
        if d["keyword"]:
            ax.axvspan(*d["keyword"][j], color="cyan", alpha=0.18, label="keyword position")
        ax.set_xlabel("time (s)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_ylim(bottom=0)
        if j == 0:
            ax.set_ylabel("attention weight", fontsize=8)
    handles, labels = axes[1, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def attention_rollout(
    workdir: str,
    config: Mapping[str, Any],
    fig_dir: str,
    *,
    arms: str | Sequence[str] | None = None,
    target: str = "rollout",
    clips: int | Sequence[int] = 4,
) -> dict[str, str]:
    """Hook `attention_rollout`: one PNG per KD arm, `<fig_dir>/attention_<arm>.png`.

    Args:
      arms: stage names or one fnmatch pattern over the config's `run` (e.g. "*_l050"); default:
        of the stages of `run` with an `attention_head` model, the last one of each student model
        (Temporal KD's run order puts the largest lambda last).
      target, clips: see attention_rollout_data.

    Returns:
      title -> PNG path.

    Raises:
      Unavailable: no arm has its checkpoint and target here (names the first missing file).
    """
    if not os.path.isdir(workdir):
        raise Unavailable(f"{workdir} is not a workdir with the arms' checkpoints")
    cfg = _config(config, "attention_rollout")
    run = [s for s in str(cfg.get("run") or "").split(",") if s] or list(cfg.stages)
    if (
        arms is None
    ):  # per student model, its last head arm in run order (Temporal KD: the largest lambda)
        last = {}
        for s in run:
            models = cfg.stages[s].get("models", {})
            if any(m.get("model") == "attention_head" for m in models.values()):
                key = tuple(sorted(str(m.get("model")) for m in models.values()))
                last[key] = s
        names = list(last.values())
    elif isinstance(arms, str):
        names = [s for s in run if fnmatch.fnmatchcase(s, arms)]
    else:
        names = list(arms)
    if not names:
        raise Unavailable(f"no stage of run={cfg.get('run')!r} matches arms={arms!r}")
    out, missing = {}, []
    for arm in names:
        try:
            d = attention_rollout_data(workdir, config, arm, target=target, clips=clips)
        except Unavailable as e:
            missing.append(str(e))
            continue
        title = (
            f"Temporal KD, {arm} ({os.path.relpath(d['run'], workdir)}): teacher rollout target "
            "vs the student's training-only attention head"
        )
        fig = attention_figure(d, title)
        out[f"Teacher rollout vs the KD student's head, {arm}"] = _save(
            fig, os.path.join(fig_dir, f"attention_{arm}.png")
        )
    if not out:
        raise Unavailable(
            f"{missing[0]}" + (f" (and {len(missing) - 1} more arms)" if len(missing) > 1 else "")
        )
    return out


def mel_grid(
    rows: Mapping[str, tuple[np.ndarray, np.ndarray]],
    class_names: Sequence[str],
    path: str,
    title: str,
    *,
    vmin: float = -100.0,
    vmax: float = 20.0,
) -> str:
    """Writes `mel_grid_figure(rows, class_names, title, vmin=vmin, vmax=vmax)` to the PNG `path`
    and returns `path`."""
    return _save(mel_grid_figure(rows, class_names, title, vmin=vmin, vmax=vmax), path)


def mel_grid_figure(
    rows: Mapping[str, tuple[np.ndarray, np.ndarray]],
    class_names: Sequence[str],
    title: str,
    *,
    vmin: float = -100.0,
    vmax: float = 20.0,
):
    """A grid of log-mel spectrograms, one row per set, one column per class (the set's first
    sample of that class, drawn as `[F, T]`, low bins at the bottom; an empty cell when the set
    has none), with a dB colour bar.

    Args:
      rows: set name -> (log-mel `[N, T, F]` in dB, class index `[N]`).
      class_names: `[C]` column titles.
      title: the figure title.
      vmin, vmax: the colour range in dB.

    Returns:
      The matplotlib Figure (Agg canvas).
    """
    c = len(class_names)
    fig = _figure((1.6 * c + 0.8, 1.7 * len(rows) + 0.9), layout="constrained")
    axes = fig.subplots(len(rows), c, squeeze=False)
    im = None
    for r, (name, (x, y)) in enumerate(rows.items()):
        for k in range(c):
            ax = axes[r, k]
            hit = np.flatnonzero(np.asarray(y) == k)
            if len(hit):
                im = ax.imshow(
                    np.asarray(x[hit[0]]).T,
                    origin="lower",
                    aspect="auto",
                    cmap="magma",
                    vmin=vmin,
                    vmax=vmax,
                )
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(str(class_names[k]), fontsize=9)
            if k == 0:
                ax.set_ylabel(name, fontsize=9)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.8, label="dB", pad=0.01)
    fig.suptitle(title, fontsize=10)
    return fig


def inverted_mels(
    workdir: str,
    config: Mapping[str, Any] | None,
    fig_dir: str,
    *,
    stages: Sequence[str] | None = None,
) -> dict[str, str]:
    """Hook `inverted_mels`: `<fig_dir>/inverted_mels.png`, one row per invert stage.

    Args:
      stages: the invert stages (default: every stage of the workdir with synthetic shards,
        `<stage>/synthetic/` or `<stage>/seed0/synthetic/`, in the config's order).

    Raises:
      Unavailable: no synthetic shards in the workdir.
    """
    from kdjax.data.synthetic import source

    if not os.path.isdir(workdir):
        raise Unavailable(f"{workdir} is not a workdir with inversion shards")
    order = list((config or {}).get("stages") or {}) or sorted(os.listdir(workdir))
    names = (
        list(stages) if stages else [s for s in order if os.path.isdir(os.path.join(workdir, s))]
    )
    rows, class_names = {}, None
    for s in names:
        for root in (
            os.path.join(workdir, s, "synthetic"),
            os.path.join(workdir, s, "seed0", "synthetic"),
            os.path.join(workdir, s, "fold1", "synthetic"),
        ):
            if os.path.isfile(os.path.join(root, "meta.json")):
                src = source(root=root, extras=False)
                key = next(k for k in src.arrays if k.startswith("features/"))
                rows[s] = (src.arrays[key], np.argmax(src.arrays["labels"], -1))
                class_names = src.class_names
                break
    if not rows:
        raise Unavailable(f"no synthetic shards (<stage>/synthetic/meta.json) under {workdir}")
    path = mel_grid(
        rows,
        class_names,
        os.path.join(fig_dir, "inverted_mels.png"),
        "Inverted log-mel spectrograms (dB), the first sample of each class; time ->, mel bin ^",
    )
    return {"Inverted log-mel spectrograms per class (" + ", ".join(rows) + ")": path}


def diversity_bars(divs: Mapping[str, Mapping[str, float]], path: str, title: str) -> str:
    """Bars of the mean pairwise cosine distance of teacher embeddings per set, over all pairs
    and within class (kdjax.synthetic_diversity; FRAMI's diversity picture)."""
    fig = _figure((5.5, 3.2), layout="constrained")
    ax = fig.subplots()
    names = list(divs)
    w = 0.38
    xs = np.arange(len(names))
    ax.bar(xs - w / 2, [divs[n]["cosine"] for n in names], w, label="all pairs")
    ax.bar(xs + w / 2, [divs[n]["cosine_within_class"] for n in names], w, label="within class")
    ax.set_xticks(xs, names)
    ax.set_ylabel("mean pairwise cosine distance")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)


KINDS: dict[str, Callable[..., dict[str, str]]] = {
    "attention_rollout": attention_rollout,
    "inverted_mels": inverted_mels,
}


def default_specs(config: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The pictures of a config without `report_pictures`: `attention_rollout` when a stage of its
    `run` has an `attention_head` model, `inverted_mels` when one is an `invert` stage."""
    st = (config or {}).get("stages") or {}
    run = [s for s in str((config or {}).get("run") or "").split(",") if s in st] or list(st)
    specs = []
    if any(
        m.get("model") == "attention_head"
        for s in run
        for m in ((st[s] or {}).get("models") or {}).values()
    ):
        specs.append({"kind": "attention_rollout"})
    if any((st[s] or {}).get("kind") == "invert" for s in run):
        specs.append({"kind": "inverted_mels"})
    return specs


def draw(
    specs: Sequence[Mapping[str, Any]] | None,
    workdir: str,
    config: Mapping[str, Any] | None,
    fig_dir: str,
) -> tuple[dict[str, str], list[str]]:
    """Draws a config's `report_pictures` (`specs`; None: `default_specs(config)`).

    Returns:
      (title -> PNG path, notes): one note per picture that could not be drawn, saying why
      (the workdir lacks its files, or drawing it failed: a picture never costs the report,
      which the main job writes after hours of training).

    Raises:
      ValueError: a spec without a known `kind`, or with arguments its kind does not take
        (names `report_pictures[i]`).
    """
    pics, notes = {}, []
    for i, spec in enumerate(default_specs(config) if specs is None else specs):
        spec = dict(spec)
        kind = spec.pop("kind", None)
        if kind not in KINDS:
            raise ValueError(f"report_pictures[{i}].kind={kind!r}: expected one of {sorted(KINDS)}")
        params = inspect.signature(KINDS[kind]).parameters
        unknown = sorted(set(spec) - {n for n, p in params.items() if p.kind == p.KEYWORD_ONLY})
        if unknown:
            raise ValueError(f"report_pictures[{i}] ({kind}): unknown argument(s) {unknown}")
        try:
            pics.update(KINDS[kind](workdir, config, fig_dir, **spec))
        except Unavailable as e:
            notes.append(f"Picture `{kind}` not drawn: {e}.")
        except Exception as e:  # noqa: BLE001 (said in the report, not raised)
            notes.append(f"Picture `{kind}` not drawn: it failed ({type(e).__name__}: {e}).")
    return pics, notes


__all__ = [
    "KINDS",
    "Unavailable",
    "attention_figure",
    "attention_rollout",
    "attention_rollout_data",
    "default_specs",
    "diversity_bars",
    "draw",
    "inverted_mels",
    "mel_grid",
    "mel_grid_figure",
]
