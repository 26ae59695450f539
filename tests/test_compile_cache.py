"""The persistent compilation cache (kdjax.train.compile_cache): where it goes, how it is turned
off, and that a second fresh process running the same stage hits it with the same numbers.

The rest of the suite runs with the cache off (tests/conftest.py sets KDJAX_NO_COMPILE_CACHE=1)
so that no test depends on what an earlier run left on disk; here it is on, in a tmp dir.
"""

import json
import os
import subprocess
import sys

import ml_collections
import pytest

from kdjax.train import compile_cache

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One tiny FSDD teacher stage in a fresh process: the result fields this test compares.
SCRIPT = """
import json, sys
from configs import fsdd
from kdjax.train.stages import run_config
c = fsdd.get_config("variant=tiny,stage=teacher,seeds=1").stages.teacher
c.quiet = True
c.compile_cache_dir = sys.argv[2]
c.compile_cache_min_compile_time_s = 0.0  # every program written: hits do not depend on load
r = run_config(c, sys.argv[1])
m = r["models"]["teacher"]
print("RESULT " + json.dumps({"hit": r["compile_cache_hit"], "first_step_s": r["first_step_s"],
                              "test": m["test"], "validation": m["validation"]}))
"""


def _run(workdir, cache, env):
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(workdir), str(cache)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


@pytest.mark.slow
def test_second_fresh_process_hits_the_cache(tmp_path, data_dir):
    env = {
        k: v for k, v in os.environ.items() if k != compile_cache.ENV_OFF
    }  # conftest's XLA_FLAGS stay
    env["KDJAX_DATA_DIR"] = str(data_dir)
    cache = tmp_path / "jax_cache"
    first = _run(tmp_path / "a", cache, env)
    assert first["hit"] is False and first["first_step_s"] > 0
    assert any(cache.iterdir())
    second = _run(tmp_path / "b", cache, env)
    assert second["hit"] is True
    # the cache changes no numbers: same metrics, to the bit, from the cached executables
    assert second["test"] == first["test"] and second["validation"] == first["validation"]


def test_cache_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv(compile_cache.ENV_OFF, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    empty = ml_collections.ConfigDict({})
    assert compile_cache.cache_dir(empty) == str(tmp_path / "xdg" / "kdjax" / "jax_cache")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert compile_cache.cache_dir(None) == str(
        tmp_path / "home" / ".cache" / "kdjax" / "jax_cache"
    )
    cfg = ml_collections.ConfigDict({"compile_cache_dir": str(tmp_path / "mine")})
    assert compile_cache.cache_dir(cfg) == str(tmp_path / "mine")
    monkeypatch.setenv(compile_cache.ENV_OFF, "0")  # "0" / "" mean on
    assert compile_cache.cache_dir(cfg) == str(tmp_path / "mine")
    monkeypatch.setenv(compile_cache.ENV_OFF, "1")
    assert compile_cache.cache_dir(cfg) is None and compile_cache.configure(cfg) is None


def test_hit_since_counts_jax_events():
    E = compile_cache.CacheEvents
    snap = E.snapshot()
    assert E.hit_since(snap) is None  # no lookup
    for ev, want in [
        ((compile_cache.LOOKUP, compile_cache.HIT), True),
        ((compile_cache.LOOKUP, compile_cache.MISS), False),
        ((compile_cache.LOOKUP,), False),
    ]:  # looked up, not found, too fast to write
        snap = E.snapshot()
        for e in ev:
            E._listener(e)
        assert E.hit_since(snap) is want, ev
