"""Shared test setup: 8 simulated CPU devices (for data-parallel tests) and the real data dir."""

import os
import pathlib

# Must be set before jax initialises its backend.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

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
