"""The report's pictures (matplotlib's object API on the Agg canvas: no display needed, and
pyplot's global backend and figure list are left alone, e.g. in a notebook).

Each function writes one PNG and returns its path, or None when the runs hold nothing to draw.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from kdjax.report.runs import Run, confusion

DPI = 110
_COLORS = matplotlib.colormaps["tab10"].colors


def _grid(n: int, ncols: int = 4) -> tuple[int, int]:
    ncols = min(ncols, n)
    return math.ceil(n / ncols), ncols


def _figure(figsize: tuple[float, float], **kw: Any) -> Figure:
    fig = Figure(figsize=figsize, **kw)
    FigureCanvasAgg(fig)  # attaches the Agg canvas
    return fig


def _save(fig, path: str, panels: int = 1) -> str:
    """Saves a figure as an indexed-colour PNG (256-colour palette: a third of the RGBA size for
    these flat plots, so committed results stay small)."""
    from PIL import Image  # matplotlib's own dependency

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=DPI if panels <= 8 else 80, bbox_inches="tight")  # big grids: fewer pixels
    with Image.open(path) as im:
        pal = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    pal.save(path, optimize=True)
    return path


def learning_curves(train: Mapping[str, Sequence[Run]], report: Mapping[str, Any], key: str, path: str) -> str | None:
    """One panel per stage, one line per seed/fold: `key` = "train/loss" or "val" (the stage's
    validation metric `val/<model>/<metric>`) against the training step.

    Args:
      train: stage -> runs (kdjax.report.runs.find_runs).
      report: kdjax.report.build.build's dict (model and metric of each stage).
      key: "train/loss" or "val".
      path: the PNG to write.
    """
    panels = []
    for stage, runs in train.items():
        st = report["stages"][stage]
        k = f"val/{st['model']}/{st['metric']}" if key == "val" else key
        curves = [(r.name or stage, *r.curve(k)) for r in runs]
        curves = [c for c in curves if c[1]]
        if curves:
            panels.append((stage, k, curves))
    if not panels:
        return None
    nr, nc = _grid(len(panels))
    fig = _figure((3.6 * nc, 0.4 + 2.6 * nr), layout="constrained")
    axes = fig.subplots(nr, nc, squeeze=False, sharey=key == "val")
    first_multi = next((j for j, p in enumerate(panels) if len(p[2]) > 1), None)
    for j, (ax, (stage, _, curves)) in enumerate(zip(axes.flat, panels, strict=False)):
        for i, (name, steps, vals) in enumerate(curves):
            ax.plot(steps, vals, color=_COLORS[i % 10], lw=1.2, label=name,
                    marker="o" if len(steps) <= 12 else None, ms=3)
        ax.set_title(stage, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        logged = sorted({x for _, steps, _ in curves for x in steps})
        if len(logged) <= 6:  # few validations: tick exactly the logged steps
            ax.set_xticks(logged)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if j == first_multi:
            ax.legend(fontsize=7, loc="best")  # once: the seeds' colours are the same in every panel
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    ylabel = "train loss" if key == "train/loss" else f"validation {panels[0][1].rsplit('/', 1)[-1]}"
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel, fontsize=8)
    fig.suptitle(f"{ylabel} per arm (one line per seed/fold)", fontsize=11)
    return _save(fig, path, len(panels))


def summed_confusion(train: Mapping[str, Sequence[Run]], report: Mapping[str, Any]) -> dict[str, tuple[str, np.ndarray, int]]:
    """stage -> (model, test confusion matrix `[C, C]` summed over the stage's runs, runs);
    stages whose runs do not all record a confusion matrix are left out."""
    out = {}
    for stage, runs in train.items():
        model = report["stages"][stage]["model"]
        cms = [confusion(r, model) for r in runs]
        if cms and all(c is not None for c in cms):
            out[stage] = (model, np.sum([np.asarray(c) for c in cms], axis=0), len(cms))
    return out


def confusion_matrices(train: Mapping[str, Sequence[Run]], report: Mapping[str, Any], path: str) -> str | None:
    """One panel per stage: the test confusion matrix summed over its runs, each row coloured
    as a fraction of the true class (rows: true class, columns: predicted), counts written in
    the cells when there are at most 15 classes."""
    panels = [(stage, model, cm, n) for stage, (model, cm, n) in summed_confusion(train, report).items()]
    if not panels:
        return None
    nr, nc = _grid(len(panels), 3)
    size = 3.3 if panels[0][2].shape[0] <= 15 else 4.5
    fig = _figure((size * nc, size * nr))
    axes = fig.subplots(nr, nc, squeeze=False)
    for ax, (stage, model, cm, n) in zip(axes.flat, panels, strict=False):
        frac = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
        c = cm.shape[0]
        if c <= 15:
            for i in range(c):
                for j in range(c):
                    if cm[i, j]:
                        ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=6 if c > 10 else 7,
                                color="white" if frac[i, j] > 0.5 else "black")
        acc = np.trace(cm) / max(cm.sum(), 1)
        ax.set_title(f"{stage} ({model}): acc {acc:.3f}, {n} run{'s' if n > 1 else ''}", fontsize=9)
        ax.set_xlabel("predicted class", fontsize=8)
        ax.set_ylabel("true class", fontsize=8)
        ax.set_xticks(range(c))
        ax.set_yticks(range(c))
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, path, len(panels))


def forest(report: Mapping[str, Any], path: str) -> str | None:
    """Paired differences (arm - baseline) with their 95% intervals, one row per comparison:
    the plain t interval (thin) and, for folds, the Nadeau-Bengio interval (thick, lighter);
    0 and the claim's smallest effect of interest are marked."""
    comps = report["comparisons"]
    if not comps:
        return None
    fig = _figure((8, 1.3 + 0.42 * len(comps)))
    ax = fig.subplots()
    ys = np.arange(len(comps))[::-1]
    for y, c in zip(ys, comps, strict=True):
        p, nb = c["plain"], c["nadeau_bengio"]
        color = "#c0392b" if c["role"] == "primary" else "#2c3e50"
        if nb:
            lo, hi = (max(nb["ci95_low"], -1e9), min(nb["ci95_high"], 1e9))
            ax.plot([lo, hi], [y, y], color=color, lw=6, alpha=0.25, solid_capstyle="butt")
        if math.isfinite(p["ci95_low"]):
            ax.plot([p["ci95_low"], p["ci95_high"]], [y, y], color=color, lw=1.6)
        ax.plot([p["mean"]], [y], "o", color=color, ms=6)
    ax.axvline(0, color="black", lw=0.8)
    claim = report.get("claim")
    title = "Paired differences, arm - baseline"
    if claim:
        e = abs(claim["effect"]) * (1 if claim["direction"] == "greater" else -1)
        ax.axvline(e, color="#c0392b", lw=1, ls="--")
        title += f"\n(red dashed line: the smallest effect of interest, {e:+g}; red: the primary comparison)"
    labels = []
    for c in comps:
        tag = " (primary)" if c["role"] == "primary" else ""
        labels.append(f"{c['label']}{tag}\nn={c['plain']['n']}")
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=8)
    metric = comps[0]["metric"]
    nb_note = "; wide band: Nadeau-Bengio corrected" if any(c["nadeau_bengio"] for c in comps) else ""
    ax.set_xlabel(f"paired difference in test {metric} (dot: mean; line: 95% t interval{nb_note})", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_ylim(-0.7, len(comps) - 0.3)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


__all__ = ["confusion_matrices", "forest", "learning_curves", "summed_confusion"]
