"""Exported students: latency per clip (1 thread), file size, test accuracy through the file.

What is measured (issue #24), per STFT formulation of the exported front-end (`--stft_impls`) and
per format (StableHLO via `jax.export`, ONNX via onnxruntime, TFLite via ai-edge-litert):
  - the export itself: `kdjax.export.export_run` on the run (all test clips + near-silence
    parity against the JAX model, max |logit difference| from its model card);
  - latency: one clip (batch 1, `[1, N]` float32 raw audio -> logits, probabilities), median and
    90th percentile over `--repeats` calls after `--warmup` calls, in a worker subprocess per
    format that imports only that format's runtime (jax without flax/kdjax; onnxruntime;
    ai-edge-litert) and runs it with one thread (onnxruntime intra/inter-op threads 1, LiteRT
    num_threads 1, XLA:CPU without its Eigen thread pool). The JAX model as trained (the run's
    front-end and convolutions, jitted, same flags) is timed the same way as the baseline;
  - test accuracy recomputed by the worker through the file on every clip of the run's test
    split (clips fitted to N as in evaluation), next to the JAX model's accuracy and the run's
    own `result.json` value: they must be equal;
  - file size in bytes.
Workers run one after another; `os.getloadavg()` is recorded with each (2 shared cores).

Run (the main job's KD student, seed 0; ~2 minutes):
  python benchmarks/export.py --workdir /path/to/workdirs/fsdd/kd/seed0 --config configs/fsdd.py \
      --tf_python /path/to/tfvenv/bin/python
Writes benchmarks/results/export.json and export.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ONE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def _worker(fmt: str, path: str, clips: str, labels: str, warmup: int, repeats: int) -> dict:
    """Runs in its own process: imports only the runtime of `fmt`."""
    x = np.load(clips)
    y = np.load(labels)
    if fmt in ("stablehlo", "jax"):
        import jax

        if fmt == "jax":  # the trained model, as evaluated in training (kdjax imported here only)
            from kdjax.export.model import load_run, reference_fn

            spec = json.loads(path)
            f = reference_fn(load_run(spec["workdir"], spec["config"]))
            call = lambda a: f(a)  # noqa: E731
        else:
            sys.modules["flax"] = None  # the file must not need flax or kdjax
            sys.modules["kdjax"] = None
            with open(path, "rb") as fh:
                exp = jax.export.deserialize(bytearray(fh.read()))
            f = jax.jit(exp.call)
            call = lambda a: f(a)[0]  # noqa: E731
        run1 = lambda a: np.asarray(jax.block_until_ready(call(a)))  # noqa: E731
    elif fmt == "onnx":
        import onnxruntime as ort

        o = ort.SessionOptions()
        o.intra_op_num_threads = 1
        o.inter_op_num_threads = 1
        o.log_severity_level = 3
        sess = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
        run1 = lambda a: sess.run(["logits"], {"audio": a})[0]  # noqa: E731
    elif fmt == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        it = Interpreter(model_path=path, num_threads=1)
        runner = it.get_signature_runner()
        run1 = lambda a: runner(audio=a)["logits"]  # noqa: E731
    else:
        raise ValueError(fmt)
    logits = np.concatenate([run1(x[k : k + 1]) for k in range(len(x))])
    for k in range(warmup):
        run1(x[k % len(x)][None])
    times = []
    for k in range(repeats):
        a = x[k % len(x)][None]
        t0 = time.perf_counter()
        run1(a)
        times.append(time.perf_counter() - t0)
    ms = 1e3 * np.asarray(times)
    return {
        "accuracy": float(np.mean(logits.argmax(-1) == y)),
        "clips": int(len(x)),
        "ms_median": float(np.median(ms)),
        "ms_p90": float(np.percentile(ms, 90)),
        "repeats": repeats,
        "loadavg": os.getloadavg(),
    }


def _spawn(fmt: str, path: str, tmp: str, warmup: int, repeats: int) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=ONE_THREAD_XLA, OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--_worker",
        fmt,
        path,
        os.path.join(tmp, "clips.npy"),
        os.path.join(tmp, "labels.npy"),
        str(warmup),
        str(repeats),
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{fmt} worker failed: {p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--config", default=None)
    ap.add_argument("--tf_python", default=os.environ.get("KDJAX_TF_PYTHON"))
    ap.add_argument("--stft_impls", default="dft,rfft")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "export"))
    args = ap.parse_args()

    import jax

    import kdjax
    from kdjax.export import parity
    from kdjax.export.exporter import export_run
    from kdjax.export.model import load_run

    fmts = ["stablehlo", "onnx"] + (["tflite"] if args.tf_python else [])
    run = load_run(args.workdir, args.config)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        audio, labels = parity.split_clips(run, "test")
        np.save(os.path.join(tmp, "clips.npy"), audio)
        np.save(os.path.join(tmp, "labels.npy"), labels)
        spec = json.dumps({"workdir": run.workdir, "config": args.config})
        base = _spawn("jax", spec, tmp, args.warmup, args.repeats)
        rows.append(
            {
                "stft_impl": "(as trained)",
                "format": "jax",
                "bytes": None,
                "max_abs_logit_diff": 0.0,
                **base,
            }
        )
        for impl in [s for s in args.stft_impls.split(",") if s]:
            out = os.path.join(tmp, impl)
            card = export_run(
                run, out, fmts, stft_impl=impl, tf_python=args.tf_python, config_spec=args.config
            )
            for fmt in fmts:
                f = card["files"][fmt]
                r = _spawn(fmt, os.path.join(out, f["file"]), tmp, args.warmup, args.repeats)
                rows.append(
                    {
                        "stft_impl": impl,
                        "format": fmt,
                        "bytes": f["bytes"],
                        "batch": f["batch"],
                        "max_abs_logit_diff": card["parity"]["formats"][fmt]["max_abs_logit_diff"],
                        **r,
                    }
                )
    res = {
        "workdir": run.workdir,
        "config": args.config,
        "model": run.name,
        "num_params": run.num_params,
        "test_clips": int(len(labels)),
        "run_test_accuracy": card["parity"]["run_test_accuracy"],
        "jax_test_accuracy": card["parity"]["jax_test_accuracy"],
        "rows": rows,
        "versions": {
            "kdjax": kdjax.__version__,
            "jax": jax.__version__,
            "python": platform.python_version(),
        },
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    from importlib import metadata

    for k in ("onnxruntime", "ai-edge-litert", "jax2onnx", "onnx", "flax"):
        try:
            res["versions"][k] = metadata.version(k)
        except metadata.PackageNotFoundError:
            pass
    git = subprocess.run(
        ["git", "-C", HERE, "describe", "--always", "--dirty"], capture_output=True, text=True
    )
    res["commit"] = (
        git.stdout.strip() or None
    )  # "-dirty": other files of the tree were being edited
    with open(args.out + ".json", "w") as f:
        json.dump(res, f, indent=1)
    lines = [
        f"# Exported student: {run.name} ({run.num_params:,} params) of `{run.workdir}`",
        "",
        f"Command: `python benchmarks/export.py --workdir {run.workdir} --config {args.config} "
        f"--tf_python <tfvenv>/bin/python --stft_impls {args.stft_impls}` ({res['date']}, {res['machine']}, "
        f"commit {res['commit']}; versions {res['versions']}).",
        f"Test accuracy on {res['test_clips']} clips: run's result.json {res['run_test_accuracy']}, "
        f"JAX model {res['jax_test_accuracy']:.4f}. Latency: batch 1, one thread, median (p90) of "
        f"{args.repeats} calls after {args.warmup}; load average when each was measured.",
        "",
        "| front-end STFT | format | file KiB | batch | max abs logit diff vs JAX | test accuracy | ms per clip (p90) | load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        kib = "" if r["bytes"] is None else f"{r['bytes'] / 1024:.1f}"
        lines.append(
            f"| {r['stft_impl']} | {r['format']} | {kib} | {r.get('batch', '')} | "
            f"{r['max_abs_logit_diff']:.2e} | {r['accuracy']:.4f} | {r['ms_median']:.2f} ({r['ms_p90']:.2f}) | "
            f"{r['loadavg'][0]:.1f} |"
        )
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--_worker":
        fmt, path, clips, labels, warmup, repeats = sys.argv[2:8]
        print(json.dumps(_worker(fmt, path, clips, labels, int(warmup), int(repeats))))
    else:
        main()
