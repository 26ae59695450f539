"""Shared test setup: 8 simulated CPU devices (for data-parallel tests) and the real data dir."""

import os
import pathlib

# XLA CPU flags for every test process; the subprocess tests pass FAST_COMPILE on (test_loop,
# test_bad_input; not test_distributed, see there).
# The tests run a few steps of many small programs, so XLA's compile time dominates: without
# LLVM's optimisation passes compiling takes about half the CPU time (one test, 61 s -> 28 s
# user time, measured 2026-12-02 on the 2-core CI-sized machine). Results stay float32-exact
# enough for every tolerance here; benchmarks and recipes keep XLA's defaults.
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
# Must be set before jax initialises its backend.
os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count=8 {FAST_COMPILE}")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# No persistent compilation cache in tests (kdjax.train.compile_cache): results must not depend
# on what an earlier run left in ~/.cache; tests/test_compile_cache.py turns it on in a tmp dir.
os.environ.setdefault("KDJAX_NO_COMPILE_CACHE", "1")

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


def shared_data_dir() -> pathlib.Path | None:
    """The real recordings: $KDJAX_DATA_DIR, else ../shared/data next to the repository."""
    env = os.environ.get("KDJAX_DATA_DIR")
    for cand in ([pathlib.Path(env)] if env else []) + [REPO.parent / "shared" / "data"]:
        if cand.is_dir():
            return cand
    return None


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
    d = shared_data_dir()
    if d is None:
        pytest.skip("real data not found: set KDJAX_DATA_DIR or place it at ../shared/data")
    return d



@pytest.fixture
def subprocess_compile_cache(tmp_path_factory, monkeypatch):
    """A fresh persistent compilation cache for the subprocesses one test starts with
    os.environ (KDJAX_NO_COMPILE_CACHE unset, XDG_CACHE_HOME in a tmp dir): the second and later
    processes running the same programs load what the first compiled, for tests that are not
    about the cache (a hit runs the executable XLA compiled for the same program:
    tests/test_compile_cache.py). Only for subprocesses on one CPU device: this process keeps
    the cache off, and with the 8 simulated devices a cache-hit run can abort in a collective
    rendezvous timeout on the loaded 2-core machine (seen; benchmarks/experiment_cost.py).
    Returns the cache directory."""
    from kdjax.train import compile_cache

    monkeypatch.delenv(compile_cache.ENV_OFF, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg_cache")))
    return pathlib.Path(compile_cache.default_dir())
