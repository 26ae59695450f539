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
`main(..., data=, double_if_unconverged=)` is also the esc10_mix driver (run_esc10_mix.py), with
`run_<data>.log`, `selection_<data>.json` and `<data>/`; sc_mix's commands are unchanged.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys

from configs.results import round2

HERE = pathlib.Path(__file__).resolve().parent
LOG = HERE / "run_sc_mix.log"
STEPS = 3000
COMMON = "variant=local,data=sc_mix,sp_feat=frames,steps=3000,eval_every=100,patience=8"
WEIGHTS, SEEDS, SELECT_SEED = (10, 100, 1000), 10, 100
ARMS = ("bce_small", "kd_small", "sp_small", "iusp_small")


def common(data: str, steps: int = STEPS) -> str:
    """The config arguments shared by every run of data set `data` at ceiling `steps`
    (`common("sc_mix") == COMMON`)."""
    return f"variant=local,data={data},sp_feat=frames,steps={steps},eval_every=100,patience=8"


def link_teacher(wd: pathlib.Path, teacher: pathlib.Path) -> None:
    """Creates workdir `wd` with its `teacher` stage a symlink to the trained teacher folder."""
    wd.mkdir(parents=True, exist_ok=True)
    if not (wd / "teacher").exists():
        os.symlink(teacher.resolve(), wd / "teacher")


def main(work: str, teacher: str, data: str = "sc_mix", double_if_unconverged: bool = False) -> None:
    """Selection then the table (module docstring) for `data`, in workdir `work` (sub-folders
    `select/<arm>_w<w>` and `table`), the round-2 teacher stage folder `teacher` linked in each.

    double_if_unconverged: the esc10_mix Plan's budget rule: if the chosen SP or IUSP selection
      run did not converge, the table's ceiling is 2 x STEPS (the selection is not rerun).
    Raises:
      subprocess.CalledProcessError: a run failed.
    """
    work, teacher = pathlib.Path(work), pathlib.Path(teacher)
    log_path, sel_common = HERE / f"run_{data}.log", common(data)

    def run(cmd: list[str]) -> None:
        round2.run(log_path, cmd)

    def log(msg: str) -> None:
        round2.log(log_path, msg)

    sel = {}
    for arm, key in (("sp", "w_sp"), ("iusp", "w_iusp")):
        for w in WEIGHTS:
            wd = work / "select" / f"{arm}_w{w}"
            link_teacher(wd, teacher)
            res = wd / f"{arm}_small" / "seed0" / "result.json"
            if not res.is_file():
                run([sys.executable, "-m", "kdjax.main",
                     f"--config=configs/iusp.py:{sel_common},stage=teacher+{arm}_small,seeds=1,{key}={w}",
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
    out = dict(seed=SELECT_SEED, criterion="best validation micro-AUPRC", common=sel_common, runs=sel,
               chosen=dict(w_sp=w_sp, w_iusp=w_iusp))
    table_common = sel_common
    if double_if_unconverged:
        unconv = [k for k in chosen.values() if not sel[k]["converged"]]
        table_common = common(data, 2 * STEPS if unconv else STEPS)
        out["budget_rule"] = dict(rule="ceiling doubles if a chosen selection run did not converge",
                                  unconverged_chosen=unconv, table_common=table_common)
        log(f"budget rule: chosen runs not converged {unconv} -> table {table_common}")
    (HERE / f"selection_{data}.json").write_text(json.dumps(out, indent=1))
    log(f"chosen w_sp={w_sp}, w_iusp={w_iusp}")
    run_table(work / "table", teacher, table_common, w_sp, w_iusp, HERE / data, log_path)


def run_table(wd: pathlib.Path, teacher: pathlib.Path, table_common: str, w_sp: float,
              w_iusp: float, out: pathlib.Path, log_path: pathlib.Path) -> None:
    """The table runs in workdir `wd` (teacher stage folder `teacher` linked): seeds 1..SEEDS x
    ARMS with config arguments `table_common` and the chosen weights, seed by seed; after each
    seed its runs' result.json + metrics.jsonl (and the workdir's config/summary) are copied
    under `out`. Each command is logged with times and load to `log_path`.

    Raises:
      subprocess.CalledProcessError: a run failed.
    """
    link_teacher(wd, teacher)
    for k in range(1, SEEDS + 1):
        round2.run(log_path, [
            sys.executable, "-m", "kdjax.main",
            f"--config=configs/iusp.py:{table_common},stage=teacher+{'+'.join(ARMS)},seeds={k},"
            f"w_sp={w_sp},w_iusp={w_iusp}", f"--workdir={wd}"])
        for arm in ARMS:
            round2.copy_files(wd / arm / f"seed{k - 1}", out / arm / f"seed{k - 1}",
                              ("result.json", "metrics.jsonl"), required=True)
        round2.copy_files(wd, out, ("config.json", "summary.json"), required=True)
    round2.log(log_path, "table runs finished")

if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
