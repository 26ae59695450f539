"""Second-round IUSP runs on Speech Commands mixtures, small student, as the README's Plan states.

1. Selection on validation (seed 100): the SP arm (`sp_feat=frames`) with w_sp in {10, 100, 1000}
   and the IUSP arm with w_iusp in {10, 100, 1000}; criterion: the run's best validation
   micro-AUPRC (result.json `models.student.validation.micro_auprc`); the relational term's
   share of the training loss at the last logged step is recorded. Test numbers unread.
2. The table: seeds 0..9, arms bce/kd/sp/iusp of the small student, the chosen weights, seed by
   seed (`seeds=k` skips finished runs); each finished run's result.json + metrics.jsonl copied
   under `sc_mix/` here at once.
Every workdir links the round-2 teacher (`teachers/run.sh`'s run) as its `teacher` stage.

Usage (repository root): `python -m configs.results.iusp.round2.run_sc_mix WORK TEACHER_DIR`
(TEACHER_DIR: the teacher stage folder of `teachers/run.sh`, e.g. workdirs/iusp2/sc_mix/teacher).
Writes `selection_sc_mix.json` and appends each command with times and load to `run_sc_mix.log`.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import sys

from configs.results import round2

HERE = pathlib.Path(__file__).resolve().parent
LOG = HERE / "run_sc_mix.log"
COMMON = "variant=local,data=sc_mix,sp_feat=frames,steps=3000,eval_every=100,patience=8"
WEIGHTS, SEEDS, SELECT_SEED = (10, 100, 1000), 10, 100
ARMS = ("bce_small", "kd_small", "sp_small", "iusp_small")


def log(msg: str) -> None:
    round2.log(LOG, msg)


def run(cmd: list[str]) -> None:
    round2.run(LOG, cmd)


def link_teacher(wd: pathlib.Path, teacher: pathlib.Path) -> None:
    wd.mkdir(parents=True, exist_ok=True)
    if not (wd / "teacher").exists():
        os.symlink(teacher.resolve(), wd / "teacher")


def main(work: str, teacher: str) -> None:
    work, teacher = pathlib.Path(work), pathlib.Path(teacher)
    sel = {}
    for arm, key in (("sp", "w_sp"), ("iusp", "w_iusp")):
        for w in WEIGHTS:
            wd = work / "select" / f"{arm}_w{w}"
            link_teacher(wd, teacher)
            res = wd / f"{arm}_small" / "seed0" / "result.json"
            if not res.is_file():
                run([sys.executable, "-m", "kdjax.main",
                     f"--config=configs/iusp.py:{COMMON},stage=teacher+{arm}_small,seeds=1,{key}={w}",
                     f"--config.stages.{arm}_small.seed={SELECT_SEED}", f"--workdir={wd}"])
            m = json.loads(res.read_text())["models"]["student"]
            sel[f"{arm}_w{w}"] = dict(arm=arm, weight=w, validation=m["validation"]["micro_auprc"],
                                      best_step=m["best_step"], converged=m["converged"],
                                      share=round2.loss_share(res.parent, arm, w))
            log(f"selection {arm} w={w}: validation {sel[f'{arm}_w{w}']['validation']:.4f}, "
                f"share {sel[f'{arm}_w{w}']['share']:.3f}")
    chosen = {arm: max((k for k in sel if sel[k]["arm"] == arm), key=lambda k: sel[k]["validation"])
              for arm in ("sp", "iusp")}
    w_sp, w_iusp = sel[chosen["sp"]]["weight"], sel[chosen["iusp"]]["weight"]
    (HERE / "selection_sc_mix.json").write_text(json.dumps(
        dict(seed=SELECT_SEED, criterion="best validation micro-AUPRC", common=COMMON, runs=sel,
             chosen=dict(w_sp=w_sp, w_iusp=w_iusp)), indent=1))
    log(f"chosen w_sp={w_sp}, w_iusp={w_iusp}")
    wd = work / "table"
    link_teacher(wd, teacher)
    for k in range(1, SEEDS + 1):
        run([sys.executable, "-m", "kdjax.main",
             f"--config=configs/iusp.py:{COMMON},stage=teacher+{'+'.join(ARMS)},seeds={k},"
             f"w_sp={w_sp},w_iusp={w_iusp}", f"--workdir={wd}"])
        for arm in ARMS:
            src, dst = wd / arm / f"seed{k - 1}", HERE / "sc_mix" / arm / f"seed{k - 1}"
            dst.mkdir(parents=True, exist_ok=True)
            for f in ("result.json", "metrics.jsonl"):
                shutil.copy(src / f, dst / f)
    for f in ("config.json", "summary.json"):
        shutil.copy(wd / f, HERE / "sc_mix" / f)
    log("table runs finished")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
