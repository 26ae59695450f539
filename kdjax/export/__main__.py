"""`python -m kdjax.export`: a trained run's deployed model to ONNX / TFLite / StableHLO files.

    python -m kdjax.export --workdir workdirs/fsdd/kd/seed0 --config configs/fsdd.py \
        --format onnx,tflite,stablehlo --out export/fsdd_kd --tf-python /path/to/tfvenv/bin/python

Exit status 0: every file written and parity-checked, `model_card.json` written; 1: a file
differs from the JAX model (one line naming the format and difference) or bad input; 2: bad
command-line arguments. See docs/export.md.
"""

from __future__ import annotations

import argparse
import os
import sys

from kdjax.export import formats, parity


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (`argv` without the program name; None: `sys.argv[1:]`).

    Raises:
      SystemExit: bad arguments (status 2, argparse's message).
    """
    p = argparse.ArgumentParser(prog="python -m kdjax.export", description=__doc__.split("\n")[0])
    p.add_argument(
        "--workdir", required=True, help="the run folder (holds ckpt/), e.g. workdirs/fsdd/kd/seed0"
    )
    p.add_argument(
        "--config",
        default=None,
        help="the config the run was trained with (configs/x.py[:args]); default <workdir>/config.json",
    )
    p.add_argument(
        "--model", default=None, help="the deployed model's name (default: the run's first)"
    )
    p.add_argument(
        "--format",
        default="onnx,stablehlo",
        help=f"comma-separated subset of {','.join(formats.FORMATS)} (default onnx,stablehlo)",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--stft-impl",
        default="dft",
        choices=("rfft", "dft", "dft16"),
        help="the exported front-end's STFT: rfft, or a windowed-DFT matmul (float32/float16 basis)",
    )
    p.add_argument(
        "--tf-python",
        default=os.environ.get("KDJAX_TF_PYTHON"),
        help="a Python with tensorflow and jax, for tflite (default $KDJAX_TF_PYTHON)",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=parity.DEFAULT_TOLERANCE,
        help="max absolute logit difference to the JAX model (default 1e-4)",
    )
    p.add_argument("--max-clips", type=int, default=None, help="test clips checked (default all)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Runs the export; returns the exit status (prints one line on failure)."""
    args = parse_args(argv)
    from kdjax.data.audio import AudioError, DatasetNotFoundError
    from kdjax.export.exporter import export_run
    from kdjax.export.model import load_run

    try:
        run = load_run(args.workdir, args.config, args.model)
        card = export_run(
            run,
            args.out,
            [f for f in args.format.split(",") if f],
            stft_impl=args.stft_impl,
            tf_python=args.tf_python,
            tolerance=args.tolerance,
            max_clips=args.max_clips,
            config_spec=args.config,
        )
    except parity.ParityError as e:
        print(f"kdjax.export: parity failed: {e}", file=sys.stderr)
        return 1
    except (
        AudioError,
        DatasetNotFoundError,
        FileNotFoundError,
        KeyError,
        ValueError,
        RuntimeError,
    ) as e:
        print(f"kdjax.export: error: {type(e).__name__}: {e}".splitlines()[0], file=sys.stderr)
        return 1
    p = card["parity"]
    print(
        f"exported {card['model']} ({card['num_params']:,} params) of {run.workdir} to {args.out}; "
        f"JAX test accuracy {p['jax_test_accuracy']:.4f} on {p['test_clips']} clips"
    )
    for fmt, f in card["files"].items():
        c = p["formats"][fmt]
        print(
            f"  {f['file']:<16} {f['bytes'] / 1024:8.1f} KiB  batch {f['batch']!s:<8} "
            f"max |dlogit| {c['max_abs_logit_diff']:.2e}  test accuracy {c['test_accuracy']:.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
