"""kdjax.report: tables, verdicts and pictures of a staged workdir's runs.

    python -m kdjax.report WORKDIR [--out DIR] [--format md|html] [--config configs/<recipe>.py[:args]]

or, as a library call, `write_report(workdir, out=..., fmt="md", config=...)`. It reads every
run's `result.json` and `metrics.jsonl` (kdjax.report.runs), computes per-stage summaries and
the paired comparisons of every arm with its baseline (kdjax.train.stats: t interval,
Nadeau-Bengio interval for cross-validation folds, Holm-adjusted p-values of the secondary
comparisons, the verdict of the config's `claim`; kdjax.report.build), draws learning curves,
confusion matrices and a forest plot (kdjax.report.figures) and the recipe's own pictures
(the config's `report_pictures` hooks: Temporal KD's rollout attention, FRAMI's inverted
spectrograms; kdjax.report.pictures), and writes
  <out>/report.md (or report.html, self-contained), <out>/report.json, <out>/figures/*.png.
The verdict rules are those
of /work/shared/REPRODUCTION.md §5 (docs/report.md).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from kdjax.report.build import build, check_claim, load_config
from kdjax.report.runs import Run, find_runs

__all__ = ["Run", "build", "check_claim", "find_runs", "load_config", "readme_block", "replace_block",
           "write_report"]


def write_report(workdir: str, out: str | None = None, fmt: str = "md", *,
                 config: Mapping[str, Any] | Any | None = None, claim: Mapping[str, Any] | None = None,
                 compare: Iterable[tuple[str, str]] = (), metric: str | None = None,
                 title: str | None = None, figures: bool = True, level: int = 1,
                 borrow: Mapping[str, str] | None = None,
                 pictures: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Writes the report of `workdir` into `out` (default: the workdir itself).

    Args:
      workdir: a staged workdir.
      out: the output folder; `report.md`/`report.html`, `report.json`, `figures/` go there.
      fmt: "md" or "html".
      config: the recipe config (ConfigDict or dict); when given it is also stored as
        `<out>/config.json`, which a later `python -m kdjax.report <out>` reads.
      claim, compare, metric, title, borrow: see kdjax.report.build.build.
      pictures: more pictures to show after the standard ones and the config's
        `report_pictures` (kdjax.report.pictures, drawn from the workdir when it holds what they
        need, else one line in the report says why): title -> PNG path (e.g. a results folder's
        committed pictures); a missing file is an error.
      figures: draw the PNGs.
      level: the markdown heading level of the title.

    Returns:
      The report dict plus `"files"`: the paths written.

    Raises:
      ValueError: an unknown fmt; see build for the rest.
    """
    from kdjax.report import render

    figs = None
    if figures:
        try:
            from kdjax.report import figures as figs
        except ImportError as e:  # matplotlib is not installed: the tables still get written
            print(f"kdjax.report: no pictures ({e}); pip install matplotlib", file=sys.stderr)

    if fmt not in ("md", "html"):
        raise ValueError(f"format={fmt!r}: expected 'md' or 'html'")
    out = out or workdir
    if config is not None and not isinstance(config, Mapping):  # a ConfigDict
        config = json.loads(config.to_json_best_effort())
    stored = os.path.join(workdir, "config.json")
    if config is None and os.path.isfile(stored):  # the main job's workdir keeps its config
        config = load_config(stored)
    rep = build(workdir, config=config, claim=claim, compare=compare, metric=metric, title=title, borrow=borrow)
    os.makedirs(out, exist_ok=True)
    if config is not None:
        with open(os.path.join(out, "config.json"), "w") as f:
            json.dump(config, f, indent=1)
    pics: dict[str, str] = {}
    if figs is not None:
        train, _ = find_runs(workdir, borrow)
        train = {s: train[s] for s in dict.fromkeys(st["stage"] for st in rep["stages"].values())}
        fdir = os.path.join(out, "figures")
        for key, path in [("forest", figs.forest(rep, os.path.join(fdir, "forest.png"))),
                          ("learning_val", figs.learning_curves(train, rep, "val", os.path.join(fdir, "learning_val.png"))),
                          ("learning_loss", figs.learning_curves(train, rep, "train/loss",
                                                                  os.path.join(fdir, "learning_loss.png"))),
                          ("confusion", figs.confusion_matrices(train, rep, os.path.join(fdir, "confusion.png")))]:
            if path:
                pics[key] = os.path.relpath(path, out)
        # the recipe's own pictures (kdjax.report.pictures), named by the config's report_pictures
        from kdjax.report import pictures as hooks

        drawn, notes = hooks.draw((config or {}).get("report_pictures"), workdir, config, fdir)
        rep["picture_notes"] = notes
        pics.update({title: os.path.relpath(path, out) for title, path in drawn.items()})
    for key, path in (pictures or {}).items():
        if not os.path.isfile(path):
            raise FileNotFoundError(f"picture {key!r}: {path} not found")
        pics[key] = os.path.relpath(path, out)
    md = render.markdown(rep, pics, level=level)
    files = [os.path.join(out, "report.json")]
    with open(files[0], "w") as f:
        json.dump(rep, f, indent=1, default=str)
    if fmt == "md":
        files.append(os.path.join(out, "report.md"))
        with open(files[-1], "w") as f:
            f.write(md)
    else:
        files.append(os.path.join(out, "report.html"))
        with open(files[-1], "w") as f:
            f.write(render.to_html(md, out))
    files += [os.path.join(out, p) for p in pics.values()]
    return {**rep, "markdown": md, "files": files}


def replace_block(text: str, name: str, content: str) -> str:
    """Replaces the text between `<!-- kdjax.report:begin NAME -->` and
    `<!-- kdjax.report:end NAME -->` (markers kept), so a README's generated part can be
    regenerated while its prose stays.

    Raises:
      ValueError: the markers are missing (names them).
    """
    begin, end = f"<!-- kdjax.report:begin {name} -->", f"<!-- kdjax.report:end {name} -->"
    pat = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pat.search(text):
        raise ValueError(f"no block {begin} ... {end} in the file")
    return pat.sub(lambda _: f"{begin}\n{content.rstrip()}\n{end}", text, count=1)


def readme_block(readme: str, name: str, workdir: str, out: str, **kw: Any) -> dict[str, Any]:
    """Writes the report of `workdir` into `out` and puts its markdown (headings from level 3,
    picture links relative to the README) between the README's `kdjax.report` markers `name`.

    Used by the results folders' thin callers (configs/results/<recipe>/make_table.py), so a
    results README's generated part is rebuilt by one command while its prose stays.

    Args:
      readme: the README path. name: the block's marker name. workdir, out, **kw: write_report's.

    Raises:
      ValueError: the README has no such markers; see write_report.
    """
    rep = write_report(workdir, out, level=3, **kw)
    rel = os.path.relpath(out, os.path.dirname(os.path.abspath(readme)) or ".")
    md = re.sub(r"!\[([^\]]*)\]\(([^)/][^)]*)\)",  # relative links: from `out` to the README's folder
                lambda m: f"![{m.group(1)}]({os.path.normpath(os.path.join(rel, m.group(2)))})", rep["markdown"])
    with open(readme) as f:
        text = f.read()
    new = replace_block(text, name, md)  # raises before anything is written: the README stays whole
    tmp = f"{readme}.tmp"
    with open(tmp, "w") as f:
        f.write(new)
    os.replace(tmp, readme)
    return rep
