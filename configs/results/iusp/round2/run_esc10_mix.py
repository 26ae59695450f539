"""Second-round IUSP runs on ESC-10 mixtures, small student, as the README's esc10_mix Plan states.

The sc_mix procedure (`run_sc_mix.main`: weights chosen on validation at seed 100, then seeds 0..9
x bce/kd/sp/iusp small with `sp_feat=frames`, ceiling 3000, patience 8) plus the Plan's budget
rule: if the chosen SP or IUSP selection run did not converge, the table's ceiling doubles
(3000 -> 6000). Writes `selection_esc10_mix.json`, `run_esc10_mix.log` and the per-run
result.json + metrics.jsonl under `esc10_mix/`.

Usage (repository root): `python -m configs.results.iusp.round2.run_esc10_mix WORK TEACHER_DIR`
(TEACHER_DIR: the esc10_mix teacher stage folder of `teachers/run.sh`).
"""

from __future__ import annotations

import sys

from configs.results.iusp.round2.run_sc_mix import main

if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], data="esc10_mix", double_if_unconverged=True)
