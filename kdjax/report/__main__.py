"""python -m kdjax.report WORKDIR|summary.json [--out DIR] [--format md|html] [--config SPEC] [...]

Writes the report of a staged workdir (see kdjax.report). Errors are one line on stderr
(exit status 1).
"""

from __future__ import annotations

import argparse
import sys

from kdjax.report import load_config, readme_block, write_report


def _pairs(values: list[str], flag: str, sep: str, expected: str, *, last: bool = False):
    """Splits each `LEFT<sep>RIGHT` value of a repeatable flag into (left, right).

    Raises:
      ValueError: a value without `sep` or with an empty side (names the flag and the form).
    """
    for v in values:
        left, found, right = v.rpartition(sep) if last else v.partition(sep)
        if not found or not left or not right:
            raise ValueError(f"{flag} {v!r}: expected {expected}")
        yield left, right


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kdjax.report", description=__doc__.splitlines()[0])
    ap.add_argument("workdir", help="a staged workdir (python -m kdjax.main --workdir ...)")
    ap.add_argument("--out", default=None, help="output folder (default: the workdir)")
    ap.add_argument("--format", default="md", choices=("md", "html"))
    ap.add_argument("--config", default=None,
                    help="configs/<recipe>.py[:args] or a config.json: baselines and the claim "
                         "(default: <workdir>/config.json when present)")
    ap.add_argument("--compare", action="append", default=[], metavar="ARM:BASELINE",
                    help="an extra paired comparison of two stages (repeatable)")
    ap.add_argument("--metric", default=None, help="the test metric (default: the claim's or the stage's)")
    ap.add_argument("--title", default=None)
    ap.add_argument("--stage", action="append", default=[], metavar="NAME=DIR",
                    help="read stage NAME's runs from DIR instead (e.g. a shared no-teacher arm)")
    ap.add_argument("--picture", action="append", default=[], metavar="TITLE=PNG",
                    help="a recipe's own picture to show after the standard ones (repeatable)")
    ap.add_argument("--no-figures", action="store_true")
    ap.add_argument("--readme", default=None, metavar="README.md",
                    help="also put the report between this file's <!-- kdjax.report:begin BLOCK --> markers")
    ap.add_argument("--block", default=None, help="the marker name for --readme (default: the title)")
    args = ap.parse_args(argv)
    try:
        pairs = list(_pairs(args.compare, "--compare", ":", "ARM:BASELINE (two stage names)"))
        borrow = dict(_pairs(args.stage, "--stage", "=", "NAME=DIR"))
        # a picture's title may hold "=", its path rarely does: split at the last one
        pictures = dict(_pairs(args.picture, "--picture", "=", "TITLE=PNG", last=True))
        config = load_config(args.config) if args.config else None
        kw = dict(config=config, compare=pairs, metric=args.metric, title=args.title,
                  figures=not args.no_figures, borrow=borrow, pictures=pictures)
        if args.readme:
            if args.format != "md" or not args.out:
                raise ValueError("--readme: needs --format md and an --out folder next to the README")
            rep = readme_block(args.readme, args.block or args.title or "report", args.workdir, args.out, **kw)
        else:
            rep = write_report(args.workdir, args.out, args.format, **kw)
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"kdjax.report: error: {e}".splitlines()[0], file=sys.stderr)
        return 1
    print(rep["markdown"])
    print("wrote " + ", ".join(rep["files"]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
