"""Second-round IUSP sc_mix table at the doubled ceiling (6000 steps), as the README's
"doubled ceiling" Plan states: the weights chosen on validation at 3000 steps
(`selection_sc_mix.json`) are kept; seeds 0..9 x bce/kd/sp/iusp small, seed by seed; each
finished run's result.json + metrics.jsonl copied under `sc_mix_6000/` at once.

Usage (repository root): `python -m configs.results.iusp.round2.run_sc_mix_6000 WORK TEACHER_DIR`.
Appends each command with times and load to `run_sc_mix_6000.log`.
"""

from __future__ import annotations

import json
import pathlib
import sys

from configs.results import round2
from configs.results.iusp.round2.run_sc_mix import HERE, STEPS, common, run_table

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
    run_table(pathlib.Path(work) / "table", pathlib.Path(teacher), common("sc_mix", 2 * STEPS),
              w_sp, w_iusp, HERE / TAG, log_path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
