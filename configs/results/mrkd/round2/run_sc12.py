"""Second-round MRKD runs on Speech Commands 12, exactly as the README's Plan (issue #25) states.

1. Selection on validation (seed 100): the joint arm with loss in {dml, ensemble} x temperature
   in {1, 3}; criterion the mean over peers of each peer's best validation accuracy (result.json
   `models.<peer>.validation.accuracy`, the best-by-validation parameters); test numbers unread.
2. Budget rule: if fewer than 2 of the 3 peers of the chosen selection run converged
   (`models.<peer>.converged`), the ceiling doubles (1300 -> 2600 steps).
3. The table: seeds 0..4, both arms, seed by seed (`seeds=k` skips the finished runs), each
   finished run's result.json + logits_test.npz copied under `sc12/` here at once.

Writes `selection.json` and appends every command with its start/end time and load average to
`run_sc12.log`. Usage (repository root): `python -m configs.results.mrkd.round2.run_sc12 WORKDIR`.
"""

from __future__ import annotations

import json
import pathlib
import sys

from configs.results import round2

HERE = pathlib.Path(__file__).resolve().parent
LOG = HERE / "run_sc12.log"
STEPS, EVAL_EVERY, SEEDS, SELECT_SEED = 1300, 100, 5, 100


def log(msg: str) -> None:
    round2.log(LOG, msg)


def run(cmd: list[str]) -> None:
    round2.run(LOG, cmd)


def main(work: str) -> None:
    work = pathlib.Path(work)
    sel = {}
    for loss in ("dml", "ensemble"):
        for t in (1, 3):
            wd = work / "select" / f"{loss}_T{t}"
            arg = (f"data=sc12,seeds=1,stage=joint,loss={loss},temperature={t},steps={STEPS},"
                   f"eval_every={EVAL_EVERY}")
            res = wd / "joint" / "seed0" / "result.json"
            if not res.is_file():
                run([sys.executable, "-m", "kdjax.main", f"--config=configs/mrkd.py:{arg}",
                     f"--config.stages.joint.seed={SELECT_SEED}", f"--workdir={wd}"])
            r = json.loads(res.read_text())
            m = r["models"]
            sel[f"{loss}_T{t}"] = dict(
                loss=loss, temperature=t, arg=arg,
                validation={p: m[p]["validation"]["accuracy"] for p in m},
                mean_validation=sum(m[p]["validation"]["accuracy"] for p in m) / len(m),
                best_step={p: m[p]["best_step"] for p in m},
                converged={p: m[p]["converged"] for p in m})
            log(f"selection {loss}_T{t}: mean validation {sel[f'{loss}_T{t}']['mean_validation']:.4f}")
    best = max(sel, key=lambda k: sel[k]["mean_validation"])
    n_conv = sum(bool(v) for v in sel[best]["converged"].values())
    steps = STEPS if n_conv >= 2 else 2 * STEPS
    (HERE / "selection.json").write_text(json.dumps(
        dict(seed=SELECT_SEED, criterion="mean over peers of best validation accuracy",
             runs=sel, chosen=best, converged_peers_of_chosen=n_conv, table_steps=steps), indent=1))
    log(f"chosen {best} ({n_conv}/3 peers converged) -> table ceiling {steps} steps")
    c = sel[best]
    for k in range(1, SEEDS + 1):
        arg = (f"data=sc12,seeds={k},loss={c['loss']},temperature={c['temperature']},"
               f"steps={steps},eval_every={EVAL_EVERY}")
        run([sys.executable, "-m", "kdjax.main", f"--config=configs/mrkd.py:{arg}",
             f"--workdir={work / 'sc12'}"])
        for arm in ("alone", "joint"):
            round2.copy_files(work / "sc12" / arm / f"seed{k - 1}", HERE / "sc12" / arm / f"seed{k - 1}",
                              ("result.json", "logits_test.npz", "logits_validation.npz", "metrics.jsonl"))
    round2.copy_files(work / "sc12", HERE / "sc12", ("config.json", "summary.json"), required=True)
    log("table runs finished")


if __name__ == "__main__":
    main(sys.argv[1])
