"""Second-round Temporal KD runs (issue #26) on noisy Speech Commands, exactly as the README's
"Plan, second round" states; `sc2` now, `sc4` later through the same `main(data=...)`.

0. Pre-stages (once per clip length, in `WORK/base` for sc2, `WORK/<data>_base` otherwise): `embed` (speech-embedding sequences), `teacher` (the
   class-token transformer on them, early stopping) and `rollout` (its class-token rollout row
   mapped onto the front-end frames), round one's command; linked into the selection and table
   workdirs (`WORK/<data>_select`, `WORK/<data>`), so every student reads the same target.
1. Selection on validation (seed 100): per student, the head lambda in LAMBDAS; criterion the
   student's best validation accuracy (`result.json` `models.student.validation.accuracy`, the
   best-by-validation parameters; a tie goes to the smaller lambda); test numbers unread.
2. Budget rule: if the chosen selection run of Att-RNN or MHAtt-RNN reached the ceiling without
   converging (`models.student.converged`), the table's ceiling doubles (2000 -> 4000 steps).
3. The table: seeds 0..4 seed by seed; per seed the primary arms (Att-RNN, MHAtt-RNN at lambda 0
   and at their chosen lambda), then the secondaries (CRNN, TC-ResNet pairs, the own-attention
   arms at the RNN's chosen lambda); one command per run (`seeds=k+1,stage=<arm>` skips the
   finished seeds); each finished run's result.json, metrics.jsonl and logits copied under
   `round2/<data>/<stage>/seed<k>/` here at once (selection runs: `round2/<data>/select/<stage>/`).
4. The Plan's extension rule: the table is built (`make_table.build`); a primary whose verdict
   is "inconclusive" with `runs_to_decide` <= EXTEND_IF seeds gets seeds SEEDS..EXTEND_SEEDS-1
   in both its arms (lambda 0 and chosen), seed by seed (`extension`).

Writes `round2/selection_<data>.json` and appends every command with its start/end time and
load average to `round2/run_<data>.log`. `--deadline HH:MM` (UTC): start no run after it (the
driver stops cleanly; rerunning the command resumes, skipping every finished run).

Usage (repository root): `python -m configs.results.temporal_kd.round2.run_sc2 WORK [--deadline 18:50]`
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

from configs.results import round2
from configs.temporal_kd import lam_code

HERE = pathlib.Path(__file__).resolve().parent
STEPS, EVAL_EVERY, PATIENCE, SEEDS, SELECT_SEED = 2000, 100, 5, 5, 100
# The Plan's extension: seeds 5-9 for a primary inconclusive after 5 seeds with <= 10 to decide.
EXTEND_SEEDS, EXTEND_IF = 10, 10
LAMBDAS = (0.25, 0.5)
PRIMARY = ("att_rnn", "mhatt_rnn")
SECONDARY = ("crnn", "temporal_cnn")
OWN = ("att_rnn", "mhatt_rnn")  # own-attention arms, at their student's chosen lambda
PRE = ("embed", "teacher", "rollout")
FILES = ("result.json", "metrics.jsonl", "logits_test.npz", "logits_validation.npz")


Deadline = round2.Deadline  # raised by round2.run when `--deadline` has passed


def base_arg(data: str, steps: int) -> str:
    """The config arguments every student run of the Plan shares (`configs/temporal_kd.py`)."""
    return (f"teacher=speech_embedding,data={data},steps={steps},eval_every={EVAL_EVERY},"
            f"patience={PATIENCE}")


def table_arms(chosen: dict[str, float]) -> list[str]:
    """Stage names of one seed of the table, in the Plan's order (primaries first), for the
    chosen lambda per student (`{student: lambda}`)."""
    arms = []
    for s in PRIMARY + SECONDARY:
        arms += [f"{s}_{lam_code(0.0)}", f"{s}_{lam_code(chosen[s])}"]
    return arms + [f"{s}_own_{lam_code(chosen[s])}" for s in OWN]


def choose(runs: dict[float, dict]) -> float:
    """The lambda with the highest best-validation accuracy; a tie goes to the smaller lambda.

    Args:
      runs: lambda -> `{"validation": accuracy, ...}`.
    """
    return max(sorted(runs), key=lambda lam: (runs[lam]["validation"], -lam))


def extension(primary: dict[str, dict]) -> list[str]:
    """The primary students that the Plan's extension rule extends to EXTEND_SEEDS seeds.

    Args:
      primary: `make_table.build(...)[1]["primary"]`: student -> its row (`verdict`,
        `runs_to_decide`).

    Returns:
      The students (in PRIMARY order) whose verdict is "inconclusive" and whose
      `runs_to_decide` is at most EXTEND_IF.
    """
    return [s for s in PRIMARY if primary[s].get("verdict") == "inconclusive"
            and primary[s].get("runs_to_decide") is not None
            and primary[s]["runs_to_decide"] <= EXTEND_IF]


def _link_pre(base: pathlib.Path, wd: pathlib.Path) -> None:
    wd.mkdir(parents=True, exist_ok=True)
    for s in PRE:
        if not (wd / s).exists():
            os.symlink(base / s, wd / s)


def base_dir(work: pathlib.Path, data: str) -> pathlib.Path:
    """The workdir of a clip length's pre-stages (`embed`, `teacher`, `rollout`).

    Each clip length has its own: the 4 s clips give other embedding sequences (51 tokens, not
    25), another teacher and another rollout. `sc2` keeps `WORK/base`, where its runs were made
    before `sc4` existed; every other length uses `WORK/<data>_base`.

    Args:
      work: the driver's WORK directory.
      data: `sc2` or `sc4` (`configs/temporal_kd.py` `data`).
    """
    return work / "base" if data == "sc2" else work / f"{data}_base"


def main(work: str, data: str = "sc2", deadline: str = "") -> None:
    """Runs (or resumes) the Plan's pre-stages, selection and table for `data` under `work`."""
    work = pathlib.Path(work).resolve()
    log_path = HERE / f"run_{data}.log"
    out = HERE / data

    stop_at = round2.deadline_time(deadline) if deadline else None

    def run(cmd: list[str]) -> None:
        round2.run(log_path, cmd, stop_at)

    def kdjax(arg: str, wd: pathlib.Path, *extra: str) -> None:
        run([sys.executable, "-m", "kdjax.main", f"--config=configs/temporal_kd.py:{arg}",
             *extra, f"--workdir={wd}"])

    base = base_dir(work, data)
    if not all((base / s / "result.json").is_file() for s in PRE):
        kdjax(f"teacher=speech_embedding,data={data},stage={'+'.join(PRE)}", base)
    for s in PRE:
        round2.copy_files(base / s, out / s, FILES)
    sel_wd, tab_wd = work / f"{data}_select", work / data
    _link_pre(base, sel_wd)
    _link_pre(base, tab_wd)

    sel: dict[str, dict] = {}
    for s in PRIMARY + SECONDARY:
        sel[s] = {}
        for lam in LAMBDAS:
            name = f"{s}_{lam_code(lam)}"
            res = sel_wd / name / "seed0" / "result.json"
            if not res.is_file():
                kdjax(f"{base_arg(data, STEPS)},seeds=1,stage={name}", sel_wd,
                      f"--config.stages.{name}.seed={SELECT_SEED}")
            round2.copy_files(res.parent, out / "select" / name, FILES)
            r = json.loads(res.read_text())
            m = r["models"]["student"]
            sel[s][lam] = dict(stage=name, validation=m["validation"]["accuracy"],
                               best_step=m["best_step"], last_step=r["last_step"],
                               converged=m["converged"], stopped_early=r["stopped_early"])
            round2.log(log_path, f"selection {name}: best validation {sel[s][lam]['validation']:.4f} "
                                 f"at step {m['best_step']} of {r['last_step']} (converged {m['converged']})")
    chosen = {s: choose(sel[s]) for s in sel}
    unconverged = [s for s in PRIMARY if not sel[s][chosen[s]]["converged"]]
    steps = 2 * STEPS if unconverged else STEPS
    (HERE / f"selection_{data}.json").write_text(json.dumps(dict(
        data=data, seed=SELECT_SEED, lambdas=list(LAMBDAS),
        criterion="best validation accuracy of the student (best-by-validation parameters); "
                  "tie -> smaller lambda",
        runs={s: {str(lam): v for lam, v in sel[s].items()} for s in sel},
        chosen=chosen, unconverged_primary_choices=unconverged, table_steps=steps,
        arg=base_arg(data, steps)), indent=1))
    round2.log(log_path, f"chosen {chosen}; primary choices not converged: {unconverged or 'none'} "
                         f"-> table ceiling {steps} steps")

    for k in range(SEEDS):
        for name in table_arms(chosen):
            res = tab_wd / name / f"seed{k}" / "result.json"
            if not res.is_file():
                kdjax(f"{base_arg(data, steps)},seeds={k + 1},stage={name}", tab_wd)
            round2.copy_files(res.parent, out / name / f"seed{k}", FILES)
        round2.log(log_path, f"seed {k}: all {len(table_arms(chosen))} arms finished")
    round2.log(log_path, "table runs finished")

    from configs.results.temporal_kd.round2 import make_table  # noqa: PLC0415 (reads the copied runs)
    _, nums = make_table.build(data, root=HERE)
    ext = extension(nums["primary"])
    rows = {s: (nums["primary"][s].get("verdict"), nums["primary"][s].get("runs_to_decide")) for s in PRIMARY}
    round2.log(log_path, f"extension rule (inconclusive, <= {EXTEND_IF} seeds to decide): {rows} "
                         f"-> seeds {SEEDS}-{EXTEND_SEEDS - 1} for {ext or 'none'}")
    for k in range(SEEDS, EXTEND_SEEDS if ext else SEEDS):
        for s in ext:
            for name in (f"{s}_{lam_code(0.0)}", f"{s}_{lam_code(chosen[s])}"):
                res = tab_wd / name / f"seed{k}" / "result.json"
                if not res.is_file():
                    kdjax(f"{base_arg(data, steps)},seeds={k + 1},stage={name}", tab_wd)
                round2.copy_files(res.parent, out / name / f"seed{k}", FILES)
        round2.log(log_path, f"extension seed {k}: finished")
    if ext:
        round2.log(log_path, "extension runs finished")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work")
    ap.add_argument("--data", default="sc2")
    ap.add_argument("--deadline", default="", help="HH:MM UTC: start no run after it")
    a = ap.parse_args()
    try:
        main(a.work, a.data, a.deadline)
    except Deadline:
        sys.exit(0)
