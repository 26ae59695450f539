"""Train-step speed: kdjax's KD step (teacher + student) and a student-only step vs a PyTorch reference.

What is timed (issue #6):
  kd       kdjax's real `train_step` built from `configs/fsdd.py`'s kd stage with `build_program`:
           jnp log-mel front-end ("logmel40_8k", on device) -> frozen teacher forward (eval mode)
           -> student forward/backward -> 0.1 CE + 0.9 T^2 KL (T=4) -> AdamW update.
  student  the same without the teacher (the fsdd `student` stage: CE only).
  cnn2d, crnn, transformer
           model-zoo train steps: the fsdd `student` stage with its student swapped for
           `kdjax.models.<kind>` at its DEFAULT size (PANNs-style 2-D CNN; Conv1D front + BiGRU;
           frame transformer with a class token), mixup off, CE only -> AdamW. PyTorch references
           `_torch_zoo_model` below: the same layers and shapes (asserted: equal parameter counts),
           the same front-end and input `[B, 8000]`; the log-mel `[B, 40, 101]` is transposed to
           `[B, 101, 40]` (frames x mels) as kdjax's models take it. Variants: `--zoo_variants`.
The PyTorch reference (below, `torch_*`) is the same architecture (TC-ResNet-style 1-D convs over
mel channels with BatchNorm, equal parameter counts, asserted), the same input `[B, 8000]` 8 kHz
waveforms, the same front-end work (`torch.stft` + mel matmul + dB with an 80 dB floor), the same
loss and AdamW (lr 3e-3, weight decay 1e-4); eager and `torch.compile` (when it works here).

Method: every (framework, variant, step, batch) runs in its own worker subprocess, so each
process's peak RSS (VmHWM from /proc/self/status, i.e. the peak resident set of that process;
includes the framework runtime; the RSS right after imports is reported too) belongs to that
configuration alone. For one configuration
the workers are alive together and run alternating blocks of steps (JAX block, torch block, ...)
so machine load (2 shared cores) hits both alike; `os.getloadavg()` is recorded with every block.
Per step the time to a host-visible result is taken (`block_until_ready` on JAX; torch eager is
synchronous). The medians of the timed steps after warm-up are compared.

Input pipeline: `pipeline.train_dataset` over FSDD `fsdd.source("train")` (clip 8000 samples,
batch 32), batches/s over the KD train steps/s at batch 32.

Run (about 10 minutes on 2 cores): `python benchmarks/train_step.py` from a venv that has torch
(see benchmarks/README or the issue: torch is not a kdjax requirement). Flags: --batch_sizes,
--steps (timed per worker), --block, --variants, --out.
Writes benchmarks/results/train_step.json and train_step.md.
Model zoo, appended as a new section to those files (existing rows kept; ~5 minutes):
  python benchmarks/train_step.py --steps_kinds=cnn2d,crnn,transformer --batch_sizes=32 \
      --steps=10 --warmup=2 --append
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import platform
import resource
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np
from absl import app, flags

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FLAGS = flags.FLAGS
flags.DEFINE_string("worker", "", "internal: run as a worker (jax|torch)")
flags.DEFINE_string("spec", "", "internal: worker spec (JSON)")
flags.DEFINE_list("batch_sizes", ["16", "32", "64"], "batch sizes")
flags.DEFINE_list(
    "steps_kinds",
    ["kd", "student"],
    "which steps: kd (teacher+student), student, and model-zoo students cnn2d, crnn, transformer",
)
flags.DEFINE_list(
    "variants",
    ["jax:xla", "jax:auto", "torch:eager", "torch:eager_1thread", "torch:compile", "torch:compile_1thread"],
    "framework:variant list; jax:<conv_impl> (xla = plain lax.conv path, auto = kdjax's default "
    "choice per backend, default = the model's default), torch:eager|compile[_1thread] (default "
    "threads = 2, or 1 thread)",
)
flags.DEFINE_list(
    "zoo_variants",
    ["jax:default", "torch:eager_1thread"],
    "framework:variant list for the model-zoo kinds (jax:default = the model's own conv choice). "
    "torch:eager (2 threads) is not in the default: on the shared 2-core machine it was 3-30x "
    "slower than 1 thread in every row measured (3-34x, see train_step.md) and costs minutes per run",
)
flags.DEFINE_bool(
    "append",
    False,
    "append this run as a new section to --out (JSON: under 'appended_runs'; .md: a new section "
    "at the end) instead of rewriting them; skips the input-pipeline measurement",
)
flags.DEFINE_integer("steps", 30, "timed steps per worker (after warm-up)")
flags.DEFINE_integer("warmup", 5, "untimed steps after the first (compile) step")
flags.DEFINE_integer("block", 5, "steps per alternating block")
flags.DEFINE_integer("pipeline_batches", 150, "timed input-pipeline batches per measurement")
flags.DEFINE_string("out", str(ROOT / "benchmarks" / "results" / "train_step.json"), "result JSON")

CLIP = 8000
SR = 8000
NUM_CLASSES = 10
ALPHA, TEMP = 0.9, 4.0
LR, WD = 3e-3, 1e-4
# Model-zoo kinds: kdjax.models.<kind> keywords (empty: the module's defaults).
ZOO = {"cnn2d": {}, "crnn": {}, "transformer": {}}


def _proc_status_mib(key: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process from /proc/self/status, in MiB.

    Not `ru_maxrss`: Linux keeps it across fork+exec, so a worker would report the driver's peak.
    VmHWM belongs to this process image alone. Falls back to ru_maxrss off Linux.
    """
    try:
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _rss_mib() -> float:
    return _proc_status_mib("VmRSS")


def _peak_rss_mib() -> float:
    return _proc_status_mib("VmHWM")


def _batches(batch: int, n: int = 4) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(batch)
    out = []
    for _ in range(n):
        labels = rng.integers(0, NUM_CLASSES, batch)
        out.append({
            "audio": (0.1 * rng.standard_normal((batch, CLIP))).astype(np.float32),
            "labels": np.eye(NUM_CLASSES, dtype=np.float32)[labels],
            "mask": np.ones(batch, np.float32),
        })
    return out


# ------------------------------------------------------------------------------------------------
# JAX worker: kdjax's own step.


def _jax_stage_config(kind: str, conv_impl: str | None):
    from configs import fsdd

    stages = fsdd.get_config(f"stage={'kd' if kind == 'kd' else 'student'}").stages
    cfg = stages["kd" if kind == "kd" else "student"]
    if kind in ZOO:
        with cfg.unlocked():
            cfg.models.student.model = kind
            cfg.models.student.kw = dict(ZOO[kind])
            cfg.mixup_alpha = 0.0  # the torch reference does not mix
    if conv_impl is not None:
        with cfg.unlocked():
            for m in list(cfg.models.values()) + list(cfg.get("teachers", {}).values()):
                m.kw = dict(m.kw) | {"conv_impl": conv_impl}
    return cfg


def jax_worker(spec: dict):
    import jax
    import jax.numpy as jnp

    from kdjax import models as models_lib
    from kdjax.train.forward import init_variables, resolve
    from kdjax.train.program import build_program
    from kdjax.train.setup import make_optimizer
    from kdjax.train.state import TrainState
    from kdjax.train.step import jit_train_step

    rss0 = _rss_mib()
    conv_impl = None if spec["variant"] == "default" else spec["variant"]
    cfg = _jax_stage_config(spec["kind"], conv_impl)
    sspec = build_program(cfg, NUM_CLASSES, SR)
    params, stats = init_variables(sspec, jax.random.key(0), CLIP)
    tx, _ = make_optimizer(cfg)
    state = TrainState.create(params=params, batch_stats=stats, tx=tx)
    # Random frozen teachers (speed does not depend on their weights), each initialised on its
    # own input, read by its key path from the program's namespace (e.g. "features.teacher_teacher").
    ns = {"features": sspec.features(jnp.zeros((2, CLIP), jnp.float32))}
    frozen = [n for n in sspec.nodes if not n.trainable]
    teachers = {n.name: n.module.init(jax.random.key(10 + i), resolve(ns, n.input), train=False)
                for i, n in enumerate(frozen)}
    counts = {n: models_lib.count_params(p) for n, p in state.params.items()}
    counts |= {f"teacher.{n}": models_lib.count_params(v["params"]) for n, v in teachers.items()}
    step = jit_train_step(sspec)
    rng = jax.random.key(0)
    batches = _batches(spec["batch"])
    it = [0]

    def one():
        b = batches[it[0] % len(batches)]
        it[0] += 1
        nonlocal state
        t = time.perf_counter()
        state, m = step(state, teachers, jax.device_put(b), rng)
        jax.block_until_ready(m["loss"])
        return time.perf_counter() - t, float(m["loss"])

    first, _ = one()
    return counts, first, one, rss0, {"jax": jax.__version__, "backend": jax.default_backend()}


# ------------------------------------------------------------------------------------------------
# PyTorch references of the model-zoo students (kdjax.models.cnn2d / crnn / transformer defaults).


def _torch_zoo_model(kind: str, n_mels: int, **kw):
    """The PyTorch twin of `kdjax.models.<kind>` at its defaults; input the log-mel `[B, F, T]`.

    Returns (module, number of redundant parameters not counted; see torch_worker).
    """
    import math

    import torch
    import torch.nn.functional as F
    from torch import nn

    if kw:
        raise ValueError(f"{kind}: the torch twin is written for the kdjax defaults only, got {kw}")

    class CNN2d(nn.Module):  # kdjax.models.cnn2d: PANNs CNN10-style, widths (16, 32, 64, 128)
        def __init__(self, widths=(16, 32, 64, 128), block_dropout=0.2, dropout=0.5):
            super().__init__()
            self.bn0 = nn.BatchNorm1d(n_mels)  # over the mel bins, statistics over batch and time
            layers, c = [], 1
            for w in widths:
                layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
                           nn.Conv2d(w, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
                           nn.AvgPool2d(2), nn.Dropout(block_dropout)]
                c = w
            self.blocks = nn.Sequential(*layers)
            self.drop = nn.Dropout(dropout)
            self.fc1 = nn.Linear(c, c)
            self.head = nn.Linear(c, NUM_CLASSES)

        def forward(self, x):  # [B, F, T]
            h = self.blocks(self.bn0(x).transpose(1, 2).unsqueeze(1))  # [B, C, T', F']
            frames = h.mean(3)  # [B, C, T']
            pooled = frames.amax(2) + frames.mean(2)
            emb = F.relu(self.fc1(self.drop(pooled)))
            return self.head(self.drop(emb))

    class CRNN(nn.Module):  # kdjax.models.crnn: Conv1D(32, k3) x2 (strides 1, 2) + BiGRU(32)
        def __init__(self, widths=(32, 32), kernel=3, strides=(1, 2), units=32):
            super().__init__()
            layers, c = [], n_mels
            for w, st in zip(widths, strides, strict=True):
                layers += [nn.Conv1d(c, w, kernel, st, padding=kernel // 2, bias=False), nn.BatchNorm1d(w),
                           nn.ReLU()]
                c = w
            self.front = nn.Sequential(*layers)
            self.gru = nn.GRU(c, units, batch_first=True, bidirectional=True)
            self.head = nn.Linear(2 * units, NUM_CLASSES)

        def forward(self, x):  # [B, F, T]
            out, _ = self.gru(self.front(x).transpose(1, 2))  # [B, T', 2H]
            return self.head(out.mean(1))

    class Block(nn.Module):  # pre-LN, written-out attention (kdjax returns the probabilities)
        def __init__(self, dim, heads, mlp_dim):
            super().__init__()
            self.heads = heads
            self.ln1, self.ln2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
            self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim, bias=False), nn.Linear(dim, dim)
            self.out = nn.Linear(dim, dim)
            self.mlp1, self.mlp2 = nn.Linear(dim, mlp_dim), nn.Linear(mlp_dim, dim)

        def forward(self, x):
            b, n, d = x.shape
            h = self.ln1(x)
            split = lambda y: y.reshape(b, n, self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
            q, k, v = split(self.q(h)), split(self.k(h)), split(self.v(h))
            probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // self.heads), dim=-1)
            x = x + self.out((probs @ v).transpose(1, 2).reshape(b, n, d))
            return x + self.mlp2(F.gelu(self.mlp1(self.ln2(x)), approximate="tanh"))  # flax gelu = tanh

    class Transformer(nn.Module):  # kdjax.models.transformer: dim 64, depth 2, heads 4, 1025 tokens
        def __init__(self, dim=64, depth=2, heads=4, max_tokens=1025):
            super().__init__()
            self.embed = nn.Linear(n_mels, dim)
            self.cls = nn.Parameter(torch.zeros(1, 1, dim))
            self.pos = nn.Parameter(0.02 * torch.randn(max_tokens, dim))
            self.blocks = nn.Sequential(*[Block(dim, heads, 4 * dim) for _ in range(depth)])
            self.ln = nn.LayerNorm(dim, eps=1e-6)
            self.head = nn.Linear(dim, NUM_CLASSES)

        def forward(self, x):  # [B, F, T]
            tok = self.embed(x.transpose(1, 2))
            h = torch.cat([self.cls.expand(tok.shape[0], -1, -1), tok], 1) + self.pos[: tok.shape[1] + 1]
            return self.head(self.ln(self.blocks(h))[:, 0])

    if kind == "cnn2d":
        return CNN2d(), 0
    if kind == "crnn":
        m = CRNN()
        return m, 2 * 2 * m.gru.hidden_size  # b_hr, b_hz per direction
    if kind == "transformer":
        return Transformer(), 0
    raise ValueError(f"no torch twin for {kind!r}")


# ------------------------------------------------------------------------------------------------
# PyTorch reference (same architecture as kdjax.models.temporal_cnn, channels-first [B, F, T]).


def torch_worker(spec: dict):
    import torch
    import torch.nn.functional as F
    from torch import nn

    rss0 = _rss_mib()
    torch.manual_seed(0)
    variant = spec["variant"]
    if variant.endswith("_1thread"):
        # torch's OpenMP regions wait at barriers for descheduled threads on a loaded 2-core
        # machine (a 2.5 s step at load 8 with 2 threads vs 0.1 s with 1): measure both.
        torch.set_num_threads(1)
        variant = variant.removesuffix("_1thread")

    class ResBlock(nn.Module):
        def __init__(self, cin, width, kernel, stride):
            super().__init__()
            self.conv1 = nn.Conv1d(cin, width, kernel, stride, padding=kernel // 2, bias=False)
            self.bn1 = nn.BatchNorm1d(width, momentum=0.1)
            self.conv2 = nn.Conv1d(width, width, kernel, 1, padding=kernel // 2, bias=False)
            self.bn2 = nn.BatchNorm1d(width, momentum=0.1)
            self.proj = None
            if stride != 1 or cin != width:
                self.proj = nn.Sequential(nn.Conv1d(cin, width, 1, stride, bias=False), nn.BatchNorm1d(width))

        def forward(self, x):
            y = F.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return F.relu((x if self.proj is None else self.proj(x)) + y)

    class TCResNet(nn.Module):
        def __init__(self, n_in, stem_width, widths, strides, kernel=9, stem_stride=1, dropout=0.0):
            super().__init__()
            self.stem = nn.Conv1d(n_in, stem_width, 3, stem_stride, padding=1, bias=False)
            self.stem_bn = nn.BatchNorm1d(stem_width)
            blocks, c = [], stem_width
            for w, s in zip(widths, strides, strict=True):
                blocks.append(ResBlock(c, w, kernel, s))
                c = w
            self.blocks = nn.Sequential(*blocks)
            self.drop = nn.Dropout(dropout)
            self.head = nn.Linear(c, NUM_CLASSES)

        def forward(self, x):  # [B, F, T]
            h = self.blocks(F.relu(self.stem_bn(self.stem(x))))
            return self.head(self.drop(h.mean(-1)))

    fe = spec["frontend"]
    fb = torch.from_numpy(np.load(spec["mel_fb"]).T.copy())  # [n_mels, F]
    window = torch.hann_window(fe["win_length"], periodic=True)

    def frontend(audio):  # [B, N] -> [B, n_mels, T] dB, 80 dB floor per example
        z = torch.stft(audio, fe["n_fft"], fe["hop_length"], fe["win_length"], window, center=True,
                       pad_mode="constant", return_complex=True)
        p = z.real.square() + z.imag.square()
        db = 10.0 * torch.log10(torch.clamp(fb @ p, min=1e-10))
        return torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - 80.0)

    redundant = 0
    if spec["kind"] in ZOO:
        student, redundant = _torch_zoo_model(spec["kind"], fe["n_mels"], **ZOO[spec["kind"]])
    else:
        student = TCResNet(fe["n_mels"], **spec["student_kw"])
    teacher = TCResNet(fe["n_mels"], **spec["teacher_kw"]).eval() if spec["kind"] == "kd" else None
    # torch.nn.GRU's b_hr, b_hz are redundant with b_ir, b_iz (the two are summed); flax's GRUCell
    # omits them, so they are not counted (same math, same FLOPs).
    counts = {"student": sum(p.numel() for p in student.parameters()) - redundant}
    if teacher is not None:
        counts["teacher.teacher"] = sum(p.numel() for p in teacher.parameters())
        for p in teacher.parameters():
            p.requires_grad_(False)
    opt = torch.optim.AdamW(student.parameters(), lr=LR, weight_decay=WD, eps=1e-8)

    def loss_fn(audio, labels):
        x = frontend(audio)
        logits = student(x)
        ce = -(labels * F.log_softmax(logits, -1)).sum(-1).mean()
        if teacher is None:
            return ce
        with torch.no_grad():
            t_logits = teacher(x)
        logp_t = F.log_softmax(t_logits / TEMP, -1)
        logp_s = F.log_softmax(logits / TEMP, -1)
        kl = (logp_t.exp() * (logp_t - logp_s)).sum(-1).mean() * TEMP**2
        return (1 - ALPHA) * ce + ALPHA * kl

    if variant == "compile":
        loss_fn = torch.compile(loss_fn)
    elif variant != "eager":
        raise ValueError(f"torch variant {spec['variant']!r}")

    batches = [{k: torch.from_numpy(v) for k, v in b.items()} for b in _batches(spec["batch"])]
    it = [0]

    def one():
        b = batches[it[0] % len(batches)]
        it[0] += 1
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(b["audio"], b["labels"])
        loss.backward()
        opt.step()
        val = float(loss.detach())
        return time.perf_counter() - t, val

    first, _ = one()
    return counts, first, one, rss0, {"torch": torch.__version__, "threads": torch.get_num_threads()}


def worker_main():
    spec = json.loads(FLAGS.spec)
    try:
        build = jax_worker if FLAGS.worker == "jax" else torch_worker
        t0 = time.perf_counter()
        counts, first, one, rss0, info = build(spec)
        ready = {"counts": counts, "first_step_s": first, "setup_s": time.perf_counter() - t0,
                 "rss_after_import_mib": rss0, "info": info}
    except Exception as e:  # reported to the driver (e.g. torch.compile not working here)
        print(json.dumps({"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()[-2000:]}),
              flush=True)
        return
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "run":
            times, losses = [], []
            for _ in range(cmd["n"]):
                dt, loss = one()
                times.append(dt)
                losses.append(loss)
            last = losses[-1] if losses else None  # n = 0: --warmup=0
            print(json.dumps({"times": times, "loss": last, "load": os.getloadavg()}), flush=True)
        elif cmd["op"] == "quit":
            print(json.dumps({"peak_rss_mib": _peak_rss_mib()}), flush=True)
            return


# ------------------------------------------------------------------------------------------------
# Driver.


class Worker:
    def __init__(self, framework: str, spec: dict):
        self.name = f"{framework}:{spec['variant']}"
        env = dict(os.environ)
        self.p = subprocess.Popen(
            [sys.executable, __file__, f"--worker={framework}", f"--spec={json.dumps(spec)}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=str(ROOT),
        )
        self.ready = self._read()
        self.times: list[float] = []
        self.loads: list[float] = []

    def _read(self) -> dict:
        line = self.p.stdout.readline()
        if not line:
            return {"error": f"worker exited with {self.p.wait()}"}
        return json.loads(line)

    def run(self, n: int) -> dict:
        self.p.stdin.write(json.dumps({"op": "run", "n": n}) + "\n")
        self.p.stdin.flush()
        r = self._read()
        return r

    def close(self) -> dict:
        if self.p.poll() is None:
            self.p.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.p.stdin.flush()
            r = self._read()
            self.p.wait()
            return r
        return {}


def measure_config(kind: str, batch: int, common: dict) -> list[dict]:
    workers = []
    for v in FLAGS.zoo_variants if kind in ZOO else FLAGS.variants:
        fw, variant = v.split(":")
        w = Worker(fw, dict(common, kind=kind, batch=batch, variant=variant))
        print(f"[{kind} b{batch}] {w.name}: {json.dumps({k: v for k, v in w.ready.items() if k != 'trace'})}",
              flush=True)
        workers.append(w)
    live = [w for w in workers if "error" not in w.ready]
    for w in live:  # warm-up (after the compile step), alternating
        w.run(FLAGS.warmup)
    for _ in range(-(-FLAGS.steps // FLAGS.block)):
        for w in live:
            r = w.run(FLAGS.block)
            w.times += r["times"]
            w.loads.append(r["load"][0])
    rows = []
    for w in workers:
        row = {"step": kind, "batch": batch, "impl": w.name}
        if "error" in w.ready:
            row["error"] = w.ready["error"]
            w.p.wait()
        else:
            end = w.close()
            t = np.asarray(w.times)
            row |= {
                "median_ms": round(1e3 * float(np.median(t)), 2),
                "p10_ms": round(1e3 * float(np.percentile(t, 10)), 2),
                "p90_ms": round(1e3 * float(np.percentile(t, 90)), 2),
                "steps_per_s": round(1.0 / float(np.median(t)), 2),
                "timed_steps": len(t),
                "first_step_s": round(w.ready["first_step_s"], 2),
                "params": w.ready["counts"],
                "peak_rss_mib": round(end.get("peak_rss_mib", float("nan")), 1),
                "rss_after_import_mib": round(w.ready["rss_after_import_mib"], 1),
                "load_1min": [round(x, 2) for x in w.loads],
                "versions": w.ready["info"],
            }
        rows.append(row)
    ok = [r for r in rows if "median_ms" in r]
    for r in ok[1:]:
        if r["params"] != ok[0]["params"]:
            raise AssertionError(f"parameter counts differ: {ok[0]['impl']} {ok[0]['params']} vs "
                                 f"{r['impl']} {r['params']}")
    eager = [r for r in ok if r["impl"].startswith("torch:eager")]
    best = min(eager, key=lambda r: r["median_ms"]) if eager else None
    for r in ok:
        if best is not None:
            # The reference is the FASTER torch eager setting (2 threads or 1) in this run.
            r["ratio_vs_torch_eager"] = round(r["median_ms"] / best["median_ms"], 3)
            r["torch_eager_reference"] = best["impl"]
        print(f"[{kind} b{batch}] {r['impl']:22s} median {r['median_ms']:8.2f} ms "
              f"ratio {r.get('ratio_vs_torch_eager', float('nan')):.3f} load {r['load_1min']}", flush=True)
    return rows


def measure_pipeline() -> dict:
    from kdjax.data import fsdd, pipeline

    src = fsdd.source("train")
    ds = pipeline.train_dataset(src, clip_samples=CLIP, batch_size=32, seed=0, read_threads=1)
    it = iter(ds)
    for _ in range(5):
        next(it)
    t = time.perf_counter()
    for _ in range(FLAGS.pipeline_batches):
        b = next(it)
    dt = time.perf_counter() - t
    assert b["audio"].shape == (32, CLIP)
    return {"batches": FLAGS.pipeline_batches, "seconds": round(dt, 3),
            "batches_per_s": round(FLAGS.pipeline_batches / dt, 1), "load_1min": round(os.getloadavg()[0], 2)}


def _result_rows(results: list[dict]) -> list[str]:
    """The markdown results table (header + one row per worker)."""
    lines = [
        "| step | batch | impl | median ms | steps/s | ratio vs torch eager | first step s | "
        "peak RSS MiB (after import) | load 1-min |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['step']} | {r['batch']} | {r['impl']} | failed: {r['error'][:80]} |||||| |")
            continue
        lines.append(
            f"| {r['step']} | {r['batch']} | {r['impl']} | {r['median_ms']:.1f} | {r['steps_per_s']:.2f} | "
            f"{r.get('ratio_vs_torch_eager', float('nan')):.3f} | {r['first_step_s']:.2f} | "
            f"{r['peak_rss_mib']:.0f} ({r['rss_after_import_mib']:.0f}) | "
            f"{min(r['load_1min']):.2f}-{max(r['load_1min']):.2f} |"
        )
    return lines


def append_run(common: dict, path: pathlib.Path) -> list[dict]:
    """--append: measure --steps_kinds x --batch_sizes and add them as a new section of the results.

    JSON: the existing object gains (or extends) "appended_runs"; markdown: a section is added at the
    end. Existing rows are not touched. Returns the measured rows.
    """
    load_start = [round(x, 2) for x in os.getloadavg()]
    results: list[dict] = []
    for kind in FLAGS.steps_kinds:
        for b in FLAGS.batch_sizes:
            results += measure_config(kind, int(b), common)
    versions: dict = {}
    params: dict = {}
    for r in results:
        versions |= {k: v for k, v in r.get("versions", {}).items() if k in ("jax", "torch")}
        if "params" in r:
            params[r["step"]] = r["params"]
    zoo = any(k in ZOO for k in FLAGS.steps_kinds)
    section = {
        "benchmark": "kdjax model-zoo student train steps vs PyTorch twins (benchmarks/train_step.py --append)"
        if zoo else "kdjax train steps vs PyTorch reference (benchmarks/train_step.py --append)",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpu_count": os.cpu_count(), "processor": platform.processor(),
                    "load_avg_start": load_start, "load_avg_end": [round(x, 2) for x in os.getloadavg()]},
        "versions": versions,
        "params": params,
        "settings": {"steps": FLAGS.steps, "warmup": FLAGS.warmup, "block": FLAGS.block,
                     "steps_kinds": FLAGS.steps_kinds, "batch_sizes": FLAGS.batch_sizes,
                     "variants": FLAGS.variants, "zoo_variants": FLAGS.zoo_variants, "zoo_kw": ZOO,
                     "memory": "peak RSS (VmHWM) of each worker process"},
        "results": results,
    }
    data = json.loads(path.read_text()) if path.exists() else {}
    data.setdefault("appended_runs", []).append(section)
    path.write_text(json.dumps(data, indent=1) + "\n")
    md = path.with_suffix(".md")
    m = section["machine"]
    lines = [
        "",
        f"## {'Model-zoo students' if zoo else 'Train steps'} (appended {section['date']})",
        "",
        f"{m['cpu_count']} CPU cores, shared with other engineers' work; load average "
        f"{m['load_avg_start']} (start) -> {m['load_avg_end']} (end). Versions: {versions}. "
        f"{FLAGS.steps} timed steps per worker after {FLAGS.warmup} warm-up steps, blocks of "
        f"{FLAGS.block}, frameworks alternating; ratio = step time / the fastest torch eager setting "
        f"run ({', '.join(v for v in (FLAGS.zoo_variants if zoo else FLAGS.variants) if 'eager' in v)}) "
        "in the same run (< 1: kdjax faster).",
    ]
    if zoo:
        lines += [
            "",
            "Each step: 8 kHz audio `[B, 8000]` -> log-mel 40 x 101 (on device) -> the student "
            "(`kdjax.models.<step>` at its defaults; PyTorch twin `_torch_zoo_model` with the same "
            "layers) -> CE -> AdamW (lr 3e-3, wd 1e-4); no mixup, no teacher. "
            "`jax:default` = the model's default convolution path (crnn's Conv1D front: one matmul on "
            "CPU; cnn2d: `lax.conv`). torch.nn.GRU's redundant hidden biases b_hr, b_hz are not "
            "counted in its parameters.",
        ]
    lines += ["", *_result_rows(results), "", f"Parameter counts (equal in both frameworks, asserted): {params}.", ""]
    ratios = [f"{r['step']} {r['ratio_vs_torch_eager']:.2f}" for r in results
              if r["impl"].startswith("jax") and "ratio_vs_torch_eager" in r]
    if ratios:
        lines += [f"kdjax/torch (faster eager) per step: {', '.join(ratios)}.", ""]
    text = md.read_text() if md.exists() else ""
    md.write_text(text.rstrip("\n") + "\n" + "\n".join(lines))
    print("appended to", path, md, flush=True)
    return results


def _exit_on_kdjax_errors(results: list[dict]) -> None:
    """Exit with status 1 when a kdjax (jax:*) worker failed: its row is written, but a broken
    kdjax step is a defect, not a measurement. A failing torch variant (e.g. torch.compile
    without a compiler) is only reported in its row."""
    failed = [f"[{r['step']} b{r['batch']}] {r['impl']}: {r['error']}" for r in results
              if "error" in r and r["impl"].startswith("jax")]
    if failed:
        sys.exit("train_step.py: kdjax step(s) failed: " + "; ".join(failed))


def write_markdown(out: dict, path: pathlib.Path) -> None:
    m = out["machine"]
    lines = [
        "# Train-step benchmark: kdjax vs PyTorch (CPU)",
        "",
        "" if out.get("complete", True) else "**Partial results (run still in progress).**",
        "",
        f"Date {out['date']}; {m['cpu_count']} CPU cores ({m['processor'] or m['platform']}), shared with "
        f"other engineers' work; load average during the run {m['load_avg_start']} (start) -> "
        f"{m['load_avg_end']} (end). Versions: {out['versions']}.",
        "Median over the timed steps after warm-up, frameworks in alternating blocks; ratio = "
        "step time / the FASTER torch eager setting's step time in the same run (< 1: kdjax faster). "
        "Peak memory = the worker process's peak RSS (VmHWM; includes the framework runtime; RSS "
        "after imports in parentheses).",
        "`jax:xla` is the plain lax.conv path; `jax:auto` is kdjax's default (see "
        "kdjax/models/layers.py).",
        "",
    ] + _result_rows(out["results"])
    p = out["input_pipeline"]
    lines += [
        "",
        f"Input pipeline (`pipeline.train_dataset`, FSDD train, batch 32, clip 8000): "
        f"{p['batches_per_s']} batches/s (median of {len(p['measurements'])} measurements, "
        f"load {p['load_1min']}); over the KD train step at batch 32 "
        f"({p.get('train_steps_per_s')} steps/s, {p.get('train_impl')}): "
        f"**{p.get('ratio_pipeline_over_step')}x** (target >= 3).",
        "",
        f"Parameter counts (equal in both frameworks, asserted): {out['params']}.",
        "",
    ]
    path.write_text("\n".join(lines) + "\n")


def main(argv):
    del argv
    if FLAGS.worker:
        worker_main()
        return
    from configs import fsdd
    from kdjax import frontends

    fe = dict(frontends.PRESETS["logmel40_8k"])
    fb = np.asarray(frontends.mel_filterbank(sample_rate=fe["sample_rate"], n_fft=fe["n_fft"], n_mels=fe["n_mels"],
                                             fmin=fe["fmin"], fmax=fe["fmax"]))
    tmp = tempfile.mkdtemp()
    np.save(os.path.join(tmp, "fb.npy"), fb)
    common = {"frontend": fe, "mel_fb": os.path.join(tmp, "fb.npy"),
              "student_kw": dict(fsdd.STUDENT), "teacher_kw": dict(fsdd.TEACHER)}
    path = pathlib.Path(FLAGS.out)
    if FLAGS.append:
        _exit_on_kdjax_errors(append_run(common, path))
        return
    load_start = [round(x, 2) for x in os.getloadavg()]
    # The input pipeline is measured at the start, after the KD configs and at the end (the
    # load changes); the ratio uses the median.
    pipes = [measure_pipeline()]
    print("input pipeline", json.dumps(pipes[-1]), flush=True)
    results: list[dict] = []
    path = pathlib.Path(FLAGS.out)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(complete: bool) -> None:
        bps = float(np.median([p["batches_per_s"] for p in pipes]))
        pipe = {"batches_per_s": round(bps, 1), "measurements": pipes,
                "load_1min": [p["load_1min"] for p in pipes],
                "source": "fsdd.source('train') (clips decoded on first read, then kept in memory), "
                          "random crop, read_threads=1, batch 32; the first measurement includes "
                          "first reads"}
        kd32 = [r for r in results if r["step"] == "kd" and r["batch"] == 32
                and r["impl"].startswith("jax") and "median_ms" in r]
        if kd32:
            best = min(kd32, key=lambda r: r["median_ms"])
            pipe["train_impl"] = best["impl"]
            pipe["train_steps_per_s"] = best["steps_per_s"]
            pipe["ratio_pipeline_over_step"] = round(pipe["batches_per_s"] / best["steps_per_s"], 2)
        versions: dict = {}
        params: dict = {}
        for r in results:
            versions |= {k: v for k, v in r.get("versions", {}).items() if k in ("jax", "torch")}
            if "params" in r:
                params[r["step"]] = r["params"]
        out = {
            "benchmark": "kdjax KD / student train step vs PyTorch reference (benchmarks/train_step.py)",
            "complete": complete,
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": {"platform": platform.platform(), "python": platform.python_version(),
                        "cpu_count": os.cpu_count(), "processor": platform.processor(),
                        "load_avg_start": load_start,
                        "load_avg_end": [round(x, 2) for x in os.getloadavg()]},
            "versions": versions,
            "params": params,
            "settings": {"steps": FLAGS.steps, "warmup": FLAGS.warmup, "block": FLAGS.block,
                         "variants": FLAGS.variants, "memory": "peak RSS (VmHWM) of each worker process"},
            "results": results,
            "input_pipeline": pipe,
        }
        path.write_text(json.dumps(out, indent=1) + "\n")
        write_markdown(out, path.with_suffix(".md"))

    for kind in FLAGS.steps_kinds:
        for b in FLAGS.batch_sizes:
            results += measure_config(kind, int(b), common)
            write(complete=False)
        pipes.append(measure_pipeline())
        print("input pipeline", json.dumps(pipes[-1]), flush=True)
    write(complete=True)
    print("wrote", path, path.with_suffix(".md"))
    _exit_on_kdjax_errors(results)


if __name__ == "__main__":
    app.run(main)
