"""The stage list of a staged config: which runs it makes and how stages refer to each other.

A staged config has `stages` (name -> a full stage config), `run` (the stage names to run, in
order, comma-joined; configs/common.py `stage_run` writes it) and `seeds` (how many seeds each
repeated stage runs) or `folds`. Stages refer to each other's outputs:
`teachers.<t>.checkpoint = "<stage>:<module>"` loads module `<module>` of stage `<stage>`, and
`{stage:<name>}` in any string of a stage config is that stage's run folder (the same seed's
folder when the referenced stage repeats), e.g. `data.join.emb = "{stage:cache}/arrays/{split}/emb.npy"`
or `data.train_source.kw.root = "{stage:invert}/synthetic"`. Stage `s` runs in `<workdir>/<s>`
(an unrepeated stage such as a teacher, `repeat=False`) or `<workdir>/<s>/seed<k>`
(`<workdir>/<s>/fold<f>` with `folds`; `<workdir>/<s>/fold<f>_seed<r>` for the further seeds of
repeated cross-validation, `seeds_per_fold` > 1).

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
        return os.path.join(workdir, name, _repeats(cfg)[_repeat_index(cfg, seed_index)][1])
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


# Seed offset between the seed repetitions of repeated cross-validation: fold position k, seed
# repetition r runs seed `stage.seed + k + SEED_STRIDE * r`, independent of how many folds are run,
# so `fold<f>_seed<r>` keeps its seed when a config runs a longer prefix of its folds.
SEED_STRIDE = 100


def _repeats(cfg: ml_collections.ConfigDict) -> list[tuple[int, str, str | None]]:
    """(seed offset, run folder name, fold) of each repetition: `folds` (times `seeds_per_fold`)
    when set, else `seeds`. The offset is also the repetition's index in `stage_runs`.

    Raises:
      ValueError: `seeds_per_fold` < 1, `seeds_per_fold` > 1 without `folds`, or more than
        SEED_STRIDE folds.
    """
    folds = cfg.get("folds")
    r_n = int(1 if cfg.get("seeds_per_fold") is None else cfg.seeds_per_fold)
    if r_n < 1:
        raise ValueError(f"seeds_per_fold={r_n}: expected >= 1 seeds per cross-validation fold")
    if folds:
        if len(folds) > SEED_STRIDE:
            raise ValueError(f"folds: {len(folds)} folds; at most {SEED_STRIDE} (SEED_STRIDE)")
        return [(k + SEED_STRIDE * r, f"fold{f}" + (f"_seed{r}" if r else ""), str(f))
                for r in range(r_n) for k, f in enumerate(folds)]
    if r_n > 1:
        raise ValueError(f"seeds_per_fold={r_n} without folds: use seeds={r_n} (a repetition per seed)")
    return [(k, f"seed{k}", None) for k in range(int(cfg.seeds))]


def _repeat_index(cfg: ml_collections.ConfigDict, seed_index: int) -> int:
    """The position in `_repeats` of the repetition with seed offset `seed_index`."""
    for i, (k, _, _) in enumerate(_repeats(cfg)):
        if k == seed_index:
            return i
    raise ValueError(f"no repetition with seed offset {seed_index}")


def stage_runs(
    cfg: ml_collections.ConfigDict, workdir: str, names: list[str] | None = None
) -> list[tuple[str, int, str, ml_collections.ConfigDict]]:
    """(stage, repetition index, workdir, config) for every run of the staged config, in order.

    Repeated stages (`repeat=True`, the default) run once per seed (`seeds`: seeds
    `stage.seed + k`, folders `seed<k>`) or, when the config has `folds` (e.g. `[1, 2, 3, 4, 5]`
    for ESC-10's official cross-validation), once per fold: folder `fold<f>`, `{fold}` in any
    string of the stage config replaced by `f` (e.g. `data.test_split = "test_fold{fold}"`),
    seed `stage.seed + k` for the fold at position k of `folds`. Repeated cross-validation
    (`folds` and `seeds_per_fold` = R > 1; Bouckaert & Frank 2004's r x k-fold design) runs
    every fold R times: repetition r = 0 is the run above (same folder and seed as without
    `seeds_per_fold`), r >= 1 runs in `fold<f>_seed<r>` with seed
    `stage.seed + k + SEED_STRIDE * r` (distinct for every (fold, r)); the list is ordered by r,
    then fold. Every arm uses the same seeds, so arms are paired by seed / fold / (fold, r).
    With folds, a teacher stage must repeat too (a teacher per fold, never trained on its
    fold's test clips); with `seeds_per_fold` a repeated teacher runs per (fold, r) too, and a
    student of (fold, r) reads the teacher of the same (fold, r).

    Args:
      names: the stages to list (default: those in `cfg.run`).

    Returns:
      `(stage, k, workdir, config)`: k is the repetition's seed offset (`config.seed - stage.seed`;
      0 for an unrepeated stage).

    Raises:
      ValueError: `run` names a stage that does not exist; a bad `seeds_per_fold` (see above).
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
