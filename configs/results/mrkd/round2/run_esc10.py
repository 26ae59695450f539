"""Second-round MRKD runs on ESC-10, exactly as the README's ESC-10 Plan (issue #25) states.

No selection stage: the mutual term is the one SC12's validation chose (ensemble, T = 3). The
runs go seed-major (seed 0 of folds 1-5, then seed 1 of folds 1-5); each increment
(`folds=F,seeds_per_fold=R`) adds one fold-run of both arms (kdjax.main skips finished runs),
and that run's result.json, metrics.jsonl and logits are copied under `esc10/` here at once.

Appends every command with its start/end time and load average to `run_esc10.log`.
Usage (repository root): `python -m configs.results.mrkd.round2.run_esc10 WORKDIR`.
"""

from __future__ import annotations

import pathlib
import sys

from configs.results import round2

HERE = pathlib.Path(__file__).resolve().parent
LOG = HERE / "run_esc10.log"
FOLDS, SEEDS_PER_FOLD = 5, 2
ARG = ("data=esc10,loss=ensemble,temperature=3,steps=600,eval_every=40,patience=5,"
       "val_fraction=0.2")
FILES = ("result.json", "metrics.jsonl", "logits_test.npz", "logits_validation.npz")


def run_name(fold: int, rep: int) -> str:
    """Folder of fold `fold` (1-5), repetition `rep` (0-based; kdjax.train.stage_list)."""
    return f"fold{fold}" if rep == 0 else f"fold{fold}_seed{rep}"


def main(work: str) -> None:
    work = pathlib.Path(work)
    for r in range(1, SEEDS_PER_FOLD + 1):
        for f in range(1, FOLDS + 1):
            name = run_name(f, r - 1)
            if all((work / arm / name / "result.json").is_file() for arm in ("alone", "joint")):
                continue
            round2.run(LOG, [sys.executable, "-m", "kdjax.main",
                             f"--config=configs/mrkd.py:{ARG},folds={f},seeds_per_fold={r}",
                             f"--workdir={work}"])
            for arm in ("alone", "joint"):
                round2.copy_files(work / arm / name, HERE / "esc10" / arm / name, FILES)
            round2.copy_files(work, HERE / "esc10", ("config.json", "summary.json"))
    round2.log(LOG, "table runs finished")


if __name__ == "__main__":
    main(*sys.argv[1:])
