"""Wall time of a whole KD stage of the main job (issue #22, part 4): today's cost vs a warm
compile cache vs cached teacher outputs, at the same number of steps.

The stage is configs/fsdd.py's `kd` stage (400 steps, batch 32, mixup 0.4, the 1.5 M-parameter
teacher) over `--seeds` seeds (3), run as `python -m kdjax.main --config configs/fsdd.py:
stage=kd,seeds=3[,teacher=cached,views=V] --workdir <fresh dir>` in a fresh subprocess and
timed from outside (process start to exit: imports, compiles, 3 x 400 steps, evaluations,
checkpoints, the report). Arms, in this order:

  prep        the teacher stage, once (its checkpoint is copied into every run's workdir; not
              part of any arm)
  a_cold      live teacher, compile cache off (KDJAX_NO_COMPILE_CACHE=1): today's cost
  b_fill      live teacher, compile cache on and empty (the first run writes it)
  b_warm      live teacher, warm compile cache (a second process)
  cache_fill  the `cache` stage (teacher logits on V views of every train clip), cache warming
  cache_warm  the same stage in a fresh folder, warm compile cache: the one-off cost of (c)
  c_fill      cached teacher outputs, first process with these programs (writes the cache)
  c_warm      cached teacher outputs + warm compile cache: (c)
then `--rounds - 1` more rounds of a_cold, c_warm and b_warm (alternating, so load drift hits
the arms alike). The compile cache lives in a private folder (`XDG_CACHE_HOME=<work>/xdg`), so
nothing a user's earlier runs left in ~/.cache/kdjax counts.

Per run: wall seconds (outside), CPU seconds of the subprocess (user + sys, getrusage), 1-minute
load average before and after (os.getloadavg), and from each seed's result.json the first-step
time, compile-cache hit, setup and train times and the steady steps/s
(`(last_step - 1) / (train_time_s - first_step_s)`: train steps after the first, with the
validations and checkpoints in between, so a slower rate than a bare step benchmark;
benchmarks/offline_kd_step.py times the bare step).

Run (about 10 minutes on the shared 2-core CPU):
  python benchmarks/experiment_cost.py            # writes benchmarks/results/experiment_cost.{json,md}
  python benchmarks/experiment_cost.py --tiny --out=/tmp/x   # the smoke test's size (variant=tiny)
Other flags: --seeds, --views, --rounds, --work (scratch folder; default a new temp dir; a
teacher already trained in <work>/prep/teacher is reused).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "fsdd.py"
ARMS = ("a_cold", "b_fill", "b_warm", "cache_fill", "cache_warm", "c_fill", "c_warm")


def cpu_model() -> str:
    """The `Model name` line of lscpu (platform.processor() as a fallback)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor()


def versions() -> dict[str, str]:
    """Versions of the libraries a run's speed depends on (read from the installed metadata)."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def git_commit() -> str:
    r = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    return r.stdout.strip() or "unknown"


def run_timed(cmd: list[str], env: dict[str, str], cwd: pathlib.Path, log: pathlib.Path) -> dict:
    """Runs `cmd` in a fresh subprocess; returns wall and CPU seconds and the load around it.

    Raises:
      RuntimeError: a non-zero exit (names the command and the log's tail).
    """
    load0 = os.getloadavg()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        r = subprocess.run(cmd, env=env, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        tail = log.read_text()[-3000:]
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}; log {log}:\n{tail}")
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "load_before": load0[0], "load_after": os.getloadavg()[0]}


def seed_results(stage_dir: pathlib.Path) -> list[dict[str, Any]]:
    """Per seed of a stage folder: first-step time, cache hit, setup/train time, steady steps/s."""
    rows = []
    for res_path in sorted(stage_dir.glob("seed*/result.json")):
        r = json.loads(res_path.read_text())
        steady = (r["last_step"] - 1) / max(r["train_time_s"] - r["first_step_s"], 1e-9)
        rows.append({
            "seed_dir": res_path.parent.name, "last_step": r["last_step"],
            "first_step_s": r["first_step_s"], "compile_cache_hit": r["compile_cache_hit"],
            "setup_time_s": r["setup_time_s"], "train_time_s": r["train_time_s"],
            "steady_steps_per_s": steady,
        })  # fmt: skip
    return rows


class Bench:
    """The runs of one measurement: a scratch folder, the teacher, the compile-cache folder."""

    def __init__(self, work: pathlib.Path, arg: str, seeds: int, views: int):
        self.work, self.seeds, self.views = work, seeds, views
        self.arg = arg  # the config arguments every run shares (e.g. "variant=tiny")
        self.xdg = work / "xdg"  # XDG_CACHE_HOME: the compile cache is <xdg>/kdjax/jax_cache
        self.runs: list[dict[str, Any]] = []
        self.count = 0

    def env(self, compile_cache: bool) -> dict[str, str]:
        """The subprocess environment: the private compile cache (or none), and XLA_FLAGS without
        `--xla_force_host_platform_device_count` (the one-device CPU run a user gets; the test
        suite's 8 simulated devices made a cache-hit run abort in a collective rendezvous
        timeout on the loaded 2-core machine)."""
        env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"),
                   XDG_CACHE_HOME=str(self.xdg), PYTHONPATH=str(REPO))  # fmt: skip
        xla = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
        env["XLA_FLAGS"] = " ".join(xla)
        env.pop("KDJAX_NO_COMPILE_CACHE", None)
        if not compile_cache:
            env["KDJAX_NO_COMPILE_CACHE"] = "1"
        return env

    def main(self, workdir: pathlib.Path, config_arg: str, compile_cache: bool, log: str) -> dict:
        cmd = [sys.executable, "-m", "kdjax.main", f"--config={CONFIG}:{config_arg}",
               f"--workdir={workdir}"]  # fmt: skip
        return run_timed(cmd, self.env(compile_cache), self.work, self.work / log)

    def prep_teacher(self) -> dict:
        """Trains the teacher stage once into <work>/prep (reused when it is already there)."""
        prep = self.work / "prep"
        if (prep / "teacher" / "result.json").is_file():
            return {"reused": str(prep / "teacher")}
        r = self.main(prep, f"{self.arg},stage=teacher", False, "prep_teacher.log")
        return dict(r, arm="prep_teacher")

    def fresh(self, name: str, with_cache: pathlib.Path | None = None) -> pathlib.Path:
        """A new workdir holding a copy of the teacher (and of a cache stage's folder)."""
        self.count += 1
        wd = self.work / "runs" / f"{self.count:02d}_{name}"
        wd.mkdir(parents=True)
        shutil.copytree(self.work / "prep" / "teacher", wd / "teacher")
        if with_cache is not None:
            shutil.copytree(with_cache, wd / "cache")
        return wd

    def kd(
        self, arm: str, cached: bool, compile_cache: bool, cache_dir: pathlib.Path | None
    ) -> dict:
        wd = self.fresh(arm, cache_dir if cached else None)
        extra = f",teacher=cached,views={self.views}" if cached else ""
        r = self.main(wd, f"{self.arg},stage=kd,seeds={self.seeds}{extra}", compile_cache,
                      f"{wd.name}.log")  # fmt: skip
        row = dict(r, arm=arm, teacher="cached" if cached else "live",
                   compile_cache=compile_cache, seeds=seed_results(wd / "kd"))  # fmt: skip
        if len(row["seeds"]) != self.seeds:
            raise RuntimeError(
                f"{wd}: expected {self.seeds} seed results, found {len(row['seeds'])}"
            )
        self.runs.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "seeds"}), flush=True)
        return row

    def cache_stage(self, arm: str) -> tuple[dict, pathlib.Path]:
        wd = self.fresh(arm)
        r = self.main(wd, f"{self.arg},stage=cache,teacher=cached,views={self.views}", True,
                      f"{wd.name}.log")  # fmt: skip
        row = dict(r, arm=arm, compile_cache=True)
        self.runs.append(row)
        print(json.dumps(row), flush=True)
        return row, wd / "cache"


def median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per arm and the ratios to a_cold (today's cost); a ratio is left out when one of
    its arms was not run (`--arms`)."""
    by: dict[str, list[dict]] = {}
    for r in runs:
        by.setdefault(r["arm"], []).append(r)
    wall = {a: median([r["wall_s"] for r in rs]) for a, rs in by.items()}
    out: dict[str, Any] = {"median_wall_s": wall, "n_runs": {a: len(rs) for a, rs in by.items()}}
    if "a_cold" in wall:
        a = wall["a_cold"]
        for arm in ("b_warm", "c_warm"):
            if arm in wall:
                out[f"{arm[0]}_warm_over_a"] = wall[arm] / a
        if "c_warm" in wall and "cache_warm" in wall:
            out["c_total_s"] = wall["cache_warm"] + wall["c_warm"]
            out["c_total_over_a"] = out["c_total_s"] / a
        if "c_warm" in wall and "cache_fill" in wall:
            out["c_total_cold_cache_stage_over_a"] = (wall["cache_fill"] + wall["c_warm"]) / a
    kd_arms = [arm for arm in ARMS if arm in by and not arm.startswith("cache_")]
    out["steady_steps_per_s"] = {
        arm: median([s["steady_steps_per_s"] for r in by[arm] for s in r["seeds"]])
        for arm in kd_arms
    }
    steady = out["steady_steps_per_s"]
    if "c_warm" in steady and "b_warm" in steady:
        out["steady_cached_over_live"] = steady["c_warm"] / steady["b_warm"]
    out["first_step"] = {
        arm: {
            "first_seed_first_step_s": median([r["seeds"][0]["first_step_s"] for r in by[arm]]),
            "cache_hits": sum(bool(s["compile_cache_hit"]) for r in by[arm] for s in r["seeds"]),
            "seed_runs": sum(len(r["seeds"]) for r in by[arm]),
        }
        for arm in kd_arms
    }
    return out


def markdown(res: dict[str, Any]) -> str:
    s, m = res["summary"], res["machine"]
    lines = [
        "# Experiment cost: a whole KD stage of the main job (issue #22)",
        "",
        f"`benchmarks/experiment_cost.py` ({res['command']}), {res['date']}, commit "
        f"`{res['commit'][:10]}`; {m['cpu_model']}, {m['cpus']} CPUs (shared with other work), "
        f"jax {res['versions']['jax']}, flax {res['versions']['flax']}, "
        f"Python {res['versions']['python']}.",
        "",
        f"Stage: `configs/fsdd.py:{res['config_arg']},stage=kd,seeds={res['seeds']}` "
        f"({res['seeds']} seeds x the kd stage's steps), one fresh subprocess per run, timed from outside "
        f"(start to exit). (c) adds `teacher=cached,views={res['views']}`.",
        "",
        "| run | teacher | compile cache | wall s | CPU s | load before -> after | "
        "first step s (per seed) | cache hits | steady steps/s (median of seeds) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["runs"]:
        seeds = r.get("seeds", [])
        fs = ", ".join(f"{x['first_step_s']:.1f}" for x in seeds) or "-"
        hits = f"{sum(bool(x['compile_cache_hit']) for x in seeds)}/{len(seeds)}" if seeds else "-"
        sps = f"{median([x['steady_steps_per_s'] for x in seeds]):.1f}" if seeds else "-"
        cc = {True: "on", False: "off (KDJAX_NO_COMPILE_CACHE=1)"}[r["compile_cache"]]
        lines.append(
            f"| {r['arm']} | {r.get('teacher', 'cache stage')} | {cc} | {r['wall_s']:.1f} | "
            f"{r['cpu_s']:.1f} | {r['load_before']:.1f} -> {r['load_after']:.1f} | {fs} | "
            f"{hits} | {sps} |"
        )
    w = s["median_wall_s"]
    lines += [
        "",
        "Medians over runs of an arm (wall s): "
        + ", ".join(f"{a} {v:.1f} (n={s['n_runs'][a]})" for a, v in w.items())
        + ".",
        "",
    ]
    if "b_warm_over_a" in s:
        lines.append(f"- (b) warm compile cache / (a) today: **{s['b_warm_over_a']:.2f}x**")
    if "c_warm_over_a" in s:
        lines.append(
            f"- (c) cached teacher outputs + warm cache, kd stage only / (a): "
            f"**{s['c_warm_over_a']:.2f}x**"
        )
    if "c_total_over_a" in s:
        line = (
            f"- (c) including the cache stage's one-off cost (warm compile cache, "
            f"{w['cache_warm']:.1f} s): {s['c_total_s']:.1f} s = **{s['c_total_over_a']:.2f}x** "
            f"(a)"
        )
        if "c_total_cold_cache_stage_over_a" in s:
            line += (
                f"; with the cache stage's cold-compile run ({w['cache_fill']:.1f} s) "
                f"instead: {s['c_total_cold_cache_stage_over_a']:.2f}x"
            )
        lines.append(line + ". Issue target: <= 0.4x.")
    st = s["steady_steps_per_s"]
    if "steady_cached_over_live" in s:
        lines.append(
            f"- Steady train steps/s inside the runs (after the first step; validations and "
            f"checkpoints included): live {st['b_warm']:.1f} vs cached {st['c_warm']:.1f} "
            f"(**{s['steady_cached_over_live']:.2f}x**"
            + (f"; a_cold {st['a_cold']:.1f})." if "a_cold" in st else ").")
        )
    lines += [
        "",
        "Load average is the 1-minute value before and after each run; the machine has 2 cores "
        "and other engineers' jobs ran beside these, so compare arms of neighbouring rows.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true",
                   help="variant=tiny (a few steps, the small teacher): the smoke test's size")  # fmt: skip
    p.add_argument("--seeds", type=int, default=None, help="seeds of the kd stage (3; tiny: 1)")
    p.add_argument("--views", type=int, default=10, help="cached views per train clip")
    p.add_argument("--rounds", type=int, default=None, help="rounds of a/c/b (2; tiny: 1)")
    p.add_argument("--arms", default=",".join(ARMS),
                   help="comma-separated subset of the arms, run in the module docstring's order "
                        "(c_* arms run a cache stage first when cache_* is not listed)")  # fmt: skip
    p.add_argument("--work", default=None, help="scratch folder (default: a new temp dir)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "experiment_cost"),
                   help="output path without suffix: writes <out>.json and <out>.md")  # fmt: skip
    args = p.parse_args(argv)
    arms = [a for a in args.arms.split(",") if a]
    if not arms or set(arms) - set(ARMS):
        p.error(f"--arms={args.arms!r}: expected a comma-separated subset of {','.join(ARMS)}")
    seeds = args.seeds or (1 if args.tiny else 3)
    rounds = args.rounds or (1 if args.tiny else 2)
    work = pathlib.Path(args.work or tempfile.mkdtemp(prefix="kdjax_experiment_cost_"))
    work.mkdir(parents=True, exist_ok=True)
    arg = "variant=tiny" if args.tiny else "variant=default"
    b = Bench(work, arg, seeds, args.views)
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    prep = b.prep_teacher()
    print(json.dumps({"prep": prep}), flush=True)
    cache_dir = None
    for arm in [a for a in ARMS if a in arms]:
        if arm.startswith("cache_"):
            _, cache_dir = b.cache_stage(arm)
            continue
        if arm.startswith("c_") and cache_dir is None:  # --arms without a cache stage
            _, cache_dir = b.cache_stage("cache_warm")
        b.kd(arm, cached=arm.startswith("c_"), compile_cache=arm != "a_cold", cache_dir=cache_dir)
    for _ in range(rounds - 1):
        for arm in [a for a in ("a_cold", "c_warm", "b_warm") if a in arms]:
            b.kd(arm, cached=arm.startswith("c_"), compile_cache=arm != "a_cold",
                 cache_dir=cache_dir)  # fmt: skip
    res = {
        "date": date,
        "command": "python benchmarks/experiment_cost.py"
        + (" " + " ".join(argv or sys.argv[1:])).rstrip(),
        "commit": git_commit(),
        "machine": {"cpu_model": cpu_model(), "cpus": os.cpu_count(), "node": platform.node()},
        "versions": versions(),
        "config_arg": arg,
        "seeds": seeds,
        "views": args.views,
        "work": str(work),
        "prep": prep,
        "runs": b.runs,
        "summary": summarize(b.runs),
    }
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(res))
    print(json.dumps(res["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
