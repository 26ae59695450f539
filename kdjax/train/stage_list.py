"""The stage list of a staged config: which runs it makes and how stages refer to each other.

A staged config has `stages` (name -> a full stage config), `run` (the stage names to run, in
order, comma-joined; configs/common.py `stage_run` writes it) and `seeds` (how many seeds each
repeated stage runs) or `folds`. Stages refer to each other's outputs:
`teachers.<t>.checkpoint = "<stage>:<module>"` loads module `<module>` of stage `<stage>`, and
`{stage:<name>}` in any string of a stage config is that stage's run folder (the same seed's
folder when the referenced stage repeats), e.g. `data.join.emb = "{stage:cache}/arrays/{split}/emb.npy"`
or `data.train_source.kw.root = "{stage:invert}/synthetic"`. Stage `s` runs in `<workdir>/<s>`
(an unrepeated stage such as a teacher, `repeat=False`) or `<workdir>/<s>/seed<k>`
(`<workdir>/<s>/fold<f>` with `folds`).

`stage_runs` expands the list into (stage, repetition, workdir, resolved config) tuples, which
kdjax.train.stages runs and kdjax.train.summary reads back.
"""

from __future__ import annotations

import copy
import os
import re

import ml_collections

_STAGE_REF = re.compile(r"\{stage:([A-Za-z0-9_]+)\}")


def _stage_dir(cfg: ml_collections.ConfigDict, workdir: str, name: str, seed_index: int, where: str) -> str:
    if name not in cfg.stages:
        raise ValueError(f"{where}: refers to stage {name!r}; stages are {list(cfg.stages)}")
    if cfg.stages[name].get("repeat", True):
        return os.path.join(workdir, name, _repeats(cfg)[seed_index][1])
    return os.path.join(workdir, name)


def link_stages(c: ml_collections.ConfigDict, cfg: ml_collections.ConfigDict, workdir: str,
                seed_index: int, stage: str) -> ml_collections.ConfigDict:
    """Resolves the stage references of stage config `c` in place (see module docstring).

    Raises:
      ValueError: a reference to a stage that does not exist (names the field).
    """
    with c.unlocked():  # checkpoint_model may be a new field of a locked config
        for t_name, t in (c.get("teachers", {}) or {}).items():
            ref = str(t.get("checkpoint", ""))
            m = re.fullmatch(r"([A-Za-z0-9_]+):([A-Za-z0-9_]+)", ref)
            if m:
                t.checkpoint = _stage_dir(cfg, workdir, m.group(1), seed_index,
                                          f"stages.{stage}.teachers.{t_name}.checkpoint={ref!r}")
                t.checkpoint_model = m.group(2)

    def expand(v: str, where: str) -> str:
        if "{stage:" not in v:
            return v
        field = f"{where}={v!r}"
        return _STAGE_REF.sub(lambda mm: _stage_dir(cfg, workdir, mm.group(1), seed_index, field), v)

    with c.unlocked():
        _map_strings(c, expand, f"stages.{stage}")
    return c


def _map_strings(node, fn, where: str = "") -> None:
    """Replaces, in place, every string value `v` of a nested config by `fn(v, "<path>.<key>")`."""
    for k in list(node.keys()):
        v = node[k]
        if isinstance(v, str):
            node[k] = fn(v, f"{where}.{k}")
        elif hasattr(v, "keys"):
            _map_strings(v, fn, f"{where}.{k}")


def _repeats(cfg: ml_collections.ConfigDict) -> list[tuple[int, str, str | None]]:
    """(index, run folder name, fold) of each repetition: `folds` when set, else `seeds`."""
    folds = cfg.get("folds")
    if folds:
        return [(k, f"fold{f}", str(f)) for k, f in enumerate(folds)]
    return [(k, f"seed{k}", None) for k in range(int(cfg.seeds))]


def stage_runs(
    cfg: ml_collections.ConfigDict, workdir: str, names: list[str] | None = None
) -> list[tuple[str, int, str, ml_collections.ConfigDict]]:
    """(stage, repetition index, workdir, config) for every run of the staged config, in order.

    Repeated stages (`repeat=True`, the default) run once per seed (`seeds`: seeds
    `stage.seed + k`, folders `seed<k>`) or, when the config has `folds` (e.g. `[1, 2, 3, 4, 5]`
    for ESC-10's official cross-validation), once per fold: folder `fold<f>`, `{fold}` in any
    string of the stage config replaced by `f` (e.g. `data.test_split = "test_fold{fold}"`),
    seed `stage.seed + k`. Every arm uses the same seeds, so arms are paired by seed/fold.
    With folds, a teacher stage must repeat too (a teacher per fold, never trained on its
    fold's test clips).

    Args:
      names: the stages to list (default: those in `cfg.run`).

    Raises:
      ValueError: `run` names a stage that does not exist.
    """
    if names is None:
        names = [s for s in str(cfg.run).split(",") if s]
    runs = []
    for name in names:
        if name not in cfg.stages:
            raise ValueError(f"run={cfg.run!r}: no stage {name!r}; stages are {list(cfg.stages)}")
        st = cfg.stages[name]
        repeat = st.get("repeat", True)
        for k, folder, fold in (_repeats(cfg) if repeat else [(0, "", None)]):
            c = copy.deepcopy(st)
            with c.unlocked():
                c.seed = int(st.seed) + k
                if fold is not None:
                    _map_strings(c, lambda v, _where, fold=fold: v.replace("{fold}", fold))
            wd = os.path.join(workdir, name, folder) if repeat else os.path.join(workdir, name)
            runs.append((name, k, wd, link_stages(c, cfg, workdir, k, name)))
    return runs
