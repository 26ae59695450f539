"""Shared pieces of the second-round results scripts (configs/results/<recipe>/round2/): the
drivers' timestamped command log and per-run file copies, the relational term's loss share read
from metrics.jsonl, and the table builders' command line. Not a library API: results tooling only."""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import time
from collections.abc import Callable

from kdjax.report import replace_block


def log(path: pathlib.Path, msg: str) -> None:
    """Prints `msg` with the UTC time and 1-minute load average and appends it to `path`."""
    line = f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC load {os.getloadavg()[0]:.1f}: {msg}"
    print(line, flush=True)
    with path.open("a") as f:
        f.write(line + "\n")


class Deadline(Exception):
    """A driver's `--deadline` passed before a run could start (`run(..., stop_at=...)`)."""


def run(path: pathlib.Path, cmd: list[str], stop_at: float | None = None) -> None:
    """Runs `cmd` (raising CalledProcessError on failure), logging it and its wall time to `path`.

    `stop_at` (Unix time, from `deadline_time`): if it has passed, `cmd` is not started; that is
    logged and Deadline raised (the drivers then stop cleanly; rerunning resumes).
    """
    if stop_at is not None and time.time() >= stop_at:
        log(path, f"deadline {time.strftime('%H:%M', time.gmtime(stop_at))} UTC passed: "
                  f"not starting {' '.join(cmd[3:])}")
        raise Deadline
    log(path, "run: " + " ".join(cmd))
    t = time.time()
    subprocess.run(cmd, check=True)
    log(path, f"done in {time.time() - t:.0f} s")


def deadline_time(hhmm: str, now: float | None = None) -> float:
    """The first moment at or after `now` (seconds since the epoch; default: the current time) whose
    UTC clock reads `hhmm`, as a Unix time: a driver started at 23:00 with `--deadline 00:55` stops
    starting runs at 00:55 the next day, not at once.

    Raises:
      ValueError: `hhmm` is not HH:MM with 0 <= HH < 24 and 0 <= MM < 60.
    """
    try:
        hh, mm = (int(x) for x in hhmm.split(":"))
        if not (0 <= hh < 24 and 0 <= mm < 60):
            raise ValueError
    except ValueError:
        raise ValueError(f"--deadline {hhmm!r}: expected HH:MM (UTC, 24-hour clock)") from None
    now = time.time() if now is None else now
    day = now - now % 86400
    t = day + hh * 3600 + mm * 60
    return t if t >= now - 60 else t + 86400


def copy_files(src: pathlib.Path, dst: pathlib.Path, names: tuple[str, ...] | list[str], *,
               required: bool = False) -> None:
    """Copies the files `names` of folder `src` into folder `dst` (created if missing), as the
    drivers do after each finished run (result.json, metrics.jsonl, logits) so a cut table keeps
    its finished runs.

    Args:
      src, dst: folders.
      names: file names in `src`.
      required: if True a missing file raises; otherwise it is skipped (e.g. a run without
        validation logits).

    Raises:
      FileNotFoundError: `required` and a file of `names` is not in `src`.
    """
    src, dst = pathlib.Path(src), pathlib.Path(dst)
    missing = [n for n in names if not (src / n).is_file()]
    if required and missing:
        raise FileNotFoundError(f"{src}: missing {missing} (expected the files {list(names)})")
    dst.mkdir(parents=True, exist_ok=True)
    for n in names:
        if n not in missing:
            shutil.copy(src / n, dst / n)


def teacher_numbers(run_dir: pathlib.Path) -> dict | None:
    """The teacher's validation and test accuracy and best step from a teacher run folder's
    result.json (`models.teacher`), as the round-2 tables report them; None if the run has not
    finished (no result.json)."""
    res = pathlib.Path(run_dir) / "result.json"
    if not res.is_file():
        return None
    tm = json.loads(res.read_text())["models"]["teacher"]
    return dict(validation=tm["validation"]["accuracy"], test=tm["test"]["accuracy"],
                best_step=tm["best_step"])


def loss_share(run_dir: pathlib.Path, term: str, weight: float) -> float:
    """`weight x term / total loss` at the last logged train step of a run folder's metrics.jsonl
    (the loop logs the terms unweighted, `train/loss/<term>`, and the weighted total `train/loss`).

    Raises:
      KeyError: the run logged no `train/loss/<term>`.
    """
    last = None
    for line in (pathlib.Path(run_dir) / "metrics.jsonl").read_text().splitlines():
        d = json.loads(line)
        if "train/loss" in d:
            last = d
    return weight * last[f"train/loss/{term}"] / last["train/loss"]


def table_main(doc: str, here: pathlib.Path, build: Callable[[str, float], tuple[str, dict]],
               effect: float, argv: list[str] | None = None) -> None:
    """The command line of a round-2 table builder: `DATA... [--effect E] [--readme R]`; per data
    set writes `here/tables_<data>.json`, the markdown between the README's
    `<!-- kdjax.report:begin round2_<data> -->` markers, and prints it."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("data", nargs="+")
    ap.add_argument("--effect", type=float, default=effect, help="smallest effect of interest")
    ap.add_argument("--readme", default=str(here.parent / "README.md"), help="'' to skip the README")
    args = ap.parse_args(argv)
    for data in args.data:
        md, nums = build(data, args.effect)
        (here / f"tables_{data}.json").write_text(json.dumps(nums, indent=1))
        if args.readme:
            readme = pathlib.Path(args.readme)
            readme.write_text(replace_block(readme.read_text(), f"round2_{data}", md))
        print(md)
