"""Front-end speed: kdjax (jit, CPU) vs librosa 0.11 batched calls, 64 clips x 5 s at 16 kHz.

Run: `.venv/bin/python benchmarks/frontends.py [--repeats 7]`. Writes
benchmarks/results/frontends.json and frontends.md. Timings are medians of repeated runs after
warm-up (`block_until_ready` for JAX). The machine may be shared with other work: the results
record the 1-minute load average before and after.

torchaudio is not measured: it needs its own torch build (torch 2.9.1, ~7 GB) that this machine
does not hold; see the markdown summary.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import librosa  # noqa: E402
import numpy as np  # noqa: E402

from kdjax import frontends as F  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent / "results"
SR, B, SECONDS = 16000, 64, 5.0


def _time(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--librosa-repeats", type=int, default=3)
    args = ap.parse_args()
    x = (0.1 * np.random.default_rng(0).standard_normal((B, int(SR * SECONDS)))).astype(np.float32)
    xj = jnp.asarray(x)
    stft_kw = dict(n_fft=512, win_length=400, hop_length=160)
    mel_kw = dict(stft_kw, n_mels=64, fmin=125.0, fmax=7500.0)
    cqt_kw = dict(hop_length=256, fmin=32.703195662574764, n_bins=84, bins_per_octave=12)
    cases = {
        "logmel": (lambda a: F.log_mel(a, sample_rate=SR, **mel_kw),
                   lambda: librosa.power_to_db(librosa.feature.melspectrogram(y=x, sr=SR, **mel_kw))),
        "stft_power": (lambda a: F.spectrogram(a, **stft_kw),
                       lambda: np.abs(librosa.stft(x, **stft_kw)) ** 2),
        "mfcc": (lambda a: F.mfcc(a, sample_rate=SR, n_mfcc=40, **dict(mel_kw, n_mels=40)),
                 lambda: librosa.feature.mfcc(y=x, sr=SR, n_mfcc=40, **dict(mel_kw, n_mels=40))),
        "cqt": (lambda a: F.cqt(a, sample_rate=SR, **cqt_kw),
                lambda: np.abs(librosa.cqt(x, sr=SR, **cqt_kw))),
    }
    load0 = os.getloadavg()[0]
    results = {}
    for name, (jfn, lfn) in cases.items():
        f = jax.jit(jfn)
        t0 = time.perf_counter()
        f(xj).block_until_ready()
        compile_s = time.perf_counter() - t0
        jt = _time(lambda: f(xj).block_until_ready(), args.repeats)
        lfn()  # warm-up (filter caches)
        lt = _time(lfn, args.librosa_repeats)
        results[name] = dict(kdjax_ms=1e3 * statistics.median(jt), kdjax_runs_ms=[1e3 * v for v in jt],
                             kdjax_compile_s=compile_s, librosa_ms=1e3 * statistics.median(lt),
                             librosa_runs_ms=[1e3 * v for v in lt],
                             speedup=statistics.median(lt) / statistics.median(jt))
        print(name, {k: round(v, 2) for k, v in results[name].items() if not k.endswith("runs_ms")}, flush=True)
    # Framing variants for the STFT (slices+concat vs gather), same rfft.
    framing = {}
    w = jnp.asarray(np.hanning(400).astype(np.float32))
    for fname, fr in (("slices", F._frame), ("gather", F._frame_gather)):
        g = jax.jit(lambda a, fr=fr: jnp.abs(jnp.fft.rfft(fr(jnp.pad(a, ((0, 0), (256, 256))), 400, 160) * w, n=512)))
        g(xj).block_until_ready()
        framing[fname + "_ms"] = 1e3 * statistics.median(_time(lambda g=g: g(xj).block_until_ready(), args.repeats))
    print("framing", framing)
    info = dict(date=datetime.datetime.now().isoformat(timespec="seconds"), cpu_count=os.cpu_count(),
                processor=platform.processor() or platform.machine(), python=platform.python_version(),
                jax=jax.__version__, librosa=librosa.__version__, numpy=np.__version__,
                backend=jax.default_backend(), batch=B, seconds=SECONDS, sample_rate=SR,
                loadavg_1min_before=load0, loadavg_1min_after=os.getloadavg()[0],
                note="shared 2-core machine with other running work; medians of repeated runs",
                torchaudio="not run: needs torch 2.9.1 (~7 GB venv), not available on this machine")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "frontends.json").write_text(json.dumps(dict(machine=info, params=dict(stft=stft_kw, logmel=mel_kw,
                                                    mfcc=dict(mel_kw, n_mels=40, n_mfcc=40), cqt=cqt_kw),
                                                    results=results, stft_framing=framing), indent=2))
    lines = [
        "# Front-end speed: kdjax (jit) vs librosa 0.11 (batched)",
        "",
        f"{B} clips x {SECONDS:g} s at {SR} Hz (one [{B}, {int(SR * SECONDS)}] float32 array), CPU, "
        f"{info['cpu_count']} cores, jax {jax.__version__}, librosa {librosa.__version__}, {info['date']}. "
        f"Median of {args.repeats} (kdjax) / {args.librosa_repeats} (librosa) runs after warm-up. "
        f"The machine was shared with other work (1-min load {load0:.1f} -> {info['loadavg_1min_after']:.1f}); "
        "absolute numbers vary, ratios are more stable.",
        "",
        "| feature | kdjax ms | librosa ms | speed-up | kdjax compile s |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['kdjax_ms']:.1f} | {r['librosa_ms']:.1f} | {r['speedup']:.1f}x | {r['kdjax_compile_s']:.1f} |")
    lines += ["", f"STFT framing (rfft of 400-sample frames, hop 160): slices+concat {framing['slices_ms']:.1f} ms, "
              f"gather {framing['gather_ms']:.1f} ms.", "",
              "Parameters: STFT n_fft 512 / win 400 / hop 160; log-mel 64 mels 125-7500 Hz (dB); MFCC 40 "
              "from 40 mels; CQT 84 bins from 32.7 Hz, 12/octave, hop 256.", "",
              "torchaudio: not measured (needs torch 2.9.1, a ~7 GB install, not available here).", ""]
    (OUT / "frontends.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
