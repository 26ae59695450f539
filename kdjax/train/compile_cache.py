"""XLA's persistent compilation cache, on by default, and whether a compile hit it.

Every stage run calls `configure(cfg)` before it compiles anything (kdjax.train.setup.
StageContext.build). The cache directory is, in order:
  KDJAX_NO_COMPILE_CACHE=1 (environment)  off: jax's own settings are left as they are
  cfg.compile_cache_dir                   a path (`~` expanded)
  $XDG_CACHE_HOME/kdjax/jax_cache         (default ~/.cache/kdjax/jax_cache)
`cfg.compile_cache_min_compile_time_s` (default 0.5 s) sets jax's
`jax_persistent_cache_min_compile_time_secs`: programs that compile faster are not written
(jax's default is 1 s). Measured on the tiny FSDD job (stage=all, XLA's default flags, 2 shared
CPU cores): 7 programs were written, the train steps at 9-13 s of compile time, the
initialisers at 2-4 s and the eval steps at 1-2 s (1.9 MB in all); 0.5 s rather than 1 s keeps
eval steps that compile in under a second on a lighter load. The cache does not change
numerics: a hit loads the executable XLA compiled for the same program, flags and devices
(tests/test_compile_cache.py; see docs/platform.md).

`CacheEvents` counts jax's compilation-cache monitoring events (lookups, hits, written misses),
so the train loop can record whether its first step's compile was a cache hit.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import jax
import ml_collections
from jax.experimental.compilation_cache import compilation_cache

ENV_OFF = "KDJAX_NO_COMPILE_CACHE"
# jax's events: a lookup (every compile with the cache on), a hit, a miss that was written.
LOOKUP = "/jax/compilation_cache/compile_requests_use_cache"
HIT, MISS = "/jax/compilation_cache/cache_hits", "/jax/compilation_cache/cache_misses"


def default_dir() -> str:
    """`$XDG_CACHE_HOME/kdjax/jax_cache` (XDG_CACHE_HOME defaults to `~/.cache`)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "kdjax", "jax_cache")


def cache_dir(cfg: ml_collections.ConfigDict | None = None) -> str | None:
    """The cache directory for `cfg` (see the module docstring); None when disabled by
    `KDJAX_NO_COMPILE_CACHE` (any value but "", "0")."""
    if os.environ.get(ENV_OFF, "") not in ("", "0"):
        return None
    path = (cfg.get("compile_cache_dir") if cfg is not None else None) or default_dir()
    return os.path.abspath(os.path.expanduser(str(path)))


def configure(cfg: ml_collections.ConfigDict | None = None) -> str | None:
    """Points jax's persistent compilation cache at `cache_dir(cfg)`; returns the directory
    (None when disabled, then nothing is changed).

    Changing the directory within a process resets jax's cache object (`reset_cache`), so
    the next compile reads and writes the new one.
    """
    path = cache_dir(cfg)
    if path is None:
        return None
    min_s = float(cfg.get("compile_cache_min_compile_time_s", 0.5)) if cfg is not None else 0.5
    if jax.config.jax_persistent_cache_min_compile_time_secs != min_s:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", min_s)
    if jax.config.jax_compilation_cache_dir != path:
        os.makedirs(path, exist_ok=True)
        compilation_cache.set_cache_dir(path)
        compilation_cache.reset_cache()
    CacheEvents.install()
    return path


class CacheEvents:
    """Process-wide counts of compilation-cache lookups, hits and misses (jax.monitoring events;
    jax reports a miss only when it writes the program, i.e. it compiled for at least
    `jax_persistent_cache_min_compile_time_secs`).

    `snapshot()` returns `(lookups, hits, misses)`; `hit_since(snap)` says whether the compiles
    since `snap` hit the cache: True (>= 1 hit and no written miss), False (a written miss, or
    lookups without any hit), None (no lookup: the cache is off, or nothing was compiled).
    """

    lookups = 0
    hits = 0
    misses = 0
    _installed = False
    _lock = threading.Lock()

    @classmethod
    def _listener(cls, event: str, **_: Any) -> None:
        if event == LOOKUP:
            cls.lookups += 1
        elif event == HIT:
            cls.hits += 1
        elif event == MISS:
            cls.misses += 1

    @classmethod
    def install(cls) -> None:
        """Registers the listener once per process."""
        with cls._lock:
            if not cls._installed:
                jax.monitoring.register_event_listener(cls._listener)
                cls._installed = True

    @classmethod
    def snapshot(cls) -> tuple[int, int, int]:
        return cls.lookups, cls.hits, cls.misses

    @classmethod
    def hit_since(cls, snap: tuple[int, int, int]) -> bool | None:
        lookups, hits, misses = (now - then for now, then in zip(cls.snapshot(), snap, strict=True))
        if not lookups:
            return None
        return bool(hits and not misses)
