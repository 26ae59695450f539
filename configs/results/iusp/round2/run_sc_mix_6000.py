"""Second-round IUSP sc_mix table at the doubled ceiling (6000 steps), as the README's
"doubled ceiling" Plan states: the weights chosen on validation at 3000 steps
(`selection_sc_mix.json`) are kept; seeds 0..9 x bce/kd/sp/iusp small, seed by seed; each
finished run's result.json + metrics.jsonl copied under `sc_mix_6000/` at once.

Usage (repository root): `python -m configs.results.iusp.round2.run_sc_mix_6000 WORK TEACHER_DIR`.
Appends each command with times and load to `run_sc_mix_6000.log`.
"""

from __future__ import annotations

import json
import shutil
import sys
import pathlib

from configs.results import round2
from configs.results.iusp.round2.run_sc_mix import ARMS, HERE, SEEDS, STEPS, common, link_teacher

TAG = "sc_mix_6000"


def main(work: str, teacher: str) -> None:
    """The table runs of the doubled-ceiling plan in workdir `work`, teacher folder `teacher`.

    Raises:
      subprocess.CalledProcessError: a run failed.
    """
    log_path = HERE / f"run_{TAG}.log"
    sel = json.loads((HERE / "selection_sc_mix.json").read_text())
    w_sp, w_iusp = sel["chosen"]["w_sp"], sel["chosen"]["w_iusp"]
    unconv = [k for k in (f"sp_w{w_sp}", f"iusp_w{w_iusp}") if not sel["runs"][k]["converged"]]
    round2.log(log_path, f"chosen selection runs not converged: {unconv} -> ceiling {2 * STEPS}")
    table_common = common("sc_mix", 2 * STEPS)
    wd = pathlib.Path(work) / "table"
    link_teacher(wd, pathlib.Path(teacher))
    for k in range(1, SEEDS + 1):
        round2.run(log_path, [
            sys.executable, "-m", "kdjax.main",
            f"--config=configs/iusp.py:{table_common},stage=teacher+{'+'.join(ARMS)},seeds={k},"
            f"w_sp={w_sp},w_iusp={w_iusp}", f"--workdir={wd}"])
        for arm in ARMS:
            src, dst = wd / arm / f"seed{k - 1}", HERE / TAG / arm / f"seed{k - 1}"
            dst.mkdir(parents=True, exist_ok=True)
            for f in ("result.json", "metrics.jsonl"):
                shutil.copy(src / f, dst / f)
        for f in ("config.json", "summary.json"):
            shutil.copy(wd / f, HERE / TAG / f)
    round2.log(log_path, "table runs finished")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
