"""Second-round FRAMI runs (issue #27), exactly as the README's "Plan (second round)" states.

0. Teacher (`stage=teacher`, `stats_pool_net`), once per data set in `WORK/<data>/base`, linked
   (symlink) into the selection and table workdirs, so every arm reads the same teacher.
1. Selection on VALIDATION (FSDD only; the choices transfer unchanged to sc12 and esc10), with
   the `di` arm (the DeepInversion baseline), on the selection seeds 100 and 101 (`seeds=2` and
   `--config.stages.<stage>.seed=100`: run k of a stage has seed `stage.seed + k`, folder
   `seed<k>`, and `di`'s k-th run reads `inv_di/seed<k>`, kdjax.train.stage_list):
   a. w_tv (per element) in W_TV_GRID (round 1's sum-scale 0.01 / 0.03 / 0.1 x
      sqrt(FSDD_ELEMENTS), i.e. 0.64 / 1.91 / 6.36; w_l2 at its default), student_mixup 0.4:
      `inv_di` (2 sets) then `di` (2 students, `student_eval_every=50`, best-by-validation
      parameters kept). A setting with a REJECTED set (acceptance < 0.95) is not eligible and
      trains no student. Criterion: the mean over the 2 seeds of the `di` student's best
      validation accuracy (result.json `models.student.validation.accuracy`); a tie goes to the
      round-1 value 1.907 (`choose_w_tv`).
   b. student_mixup in MIXUPS on the chosen w_tv's inversions: the mixup-0.4 students are those
      of (a); the mixup-0 students train in a new workdir whose `inv_di` is a symlink to the
      chosen setting's (the same sets). Same criterion; a tie goes to 0 (`choose_mixup`).
   Writes `round2/selection.json` (every run's validation numbers, the criterion, the choice).
   Test numbers of selection runs are never read.
2. The table of `--data` (fsdd, sc12 or esc10): seeds 0..4, seed-major; per seed the primary
   pair first (inv_di, di, inv_frami, frami), then the secondaries (cont, hidden, inv_adv, adv)
   and the upper reference `real` (`TABLE_ORDER`); one command per run (`seeds=k+1,stage=<s>`:
   kdjax.main skips the finished seeds); the settings of selection.json; students
   `student_eval_every=50`, a 1000-step ceiling and early stopping (`student_steps=1000,patience=5`;
   the deviation TABLE_STUDENT_STEPS); inversions `accept=0.95,on_reject=stop`.
   Failure rule (the Plan's): after every inversion run its acceptance is read; if a set is
   REJECTED the driver logs it and stops the data set (exit status 3). The rerun of ALL the
   data set's sets at 2000 (then 4000) Adam steps per batch is `--inv-steps 2000`: a new table
   workdir `WORK/<data>/table_inv2000` and per-run folder `round2/<data>_inv2000/`.
Every command is appended with its start / end time and the load average to
`round2/run_<data>.log` (configs/results/round2.run); each finished run's result.json and
metrics.jsonl are copied at once (round2.copy_files) under `round2/<data>[_inv<N>]/<stage>/seed<k>/`
(the teacher: `.../teacher/`; selection runs: `round2/select/<setting>/<stage>/seed<k>/`).
`--deadline HH:MM` (UTC): start no run after it (the driver stops cleanly; rerunning the same
command resumes, skipping every finished run). `--only select`: teacher and selection only;
`--only table`: the table only (selection.json must exist).

Usage (repository root):
  python -m configs.results.frami.round2.run WORK --data fsdd [--deadline 21:00] [--only select]
  python -m configs.results.frami.round2.run WORK --data sc12|esc10 [--inv-steps 2000]
Commands are built by `command` alone (tests/test_results_frami_round2.py checks them).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

from configs import frami
from configs.results import round2

HERE = pathlib.Path(__file__).resolve().parent
DATASETS = ("fsdd", "sc12", "esc10")
SELECT_DATA = "fsdd"  # the selection's data set (its choices transfer unchanged)
SELECT_SEED, SELECT_SEEDS = 100, 2  # selection seeds 100, 101 (never table seeds)
SEEDS, EVAL_EVERY, ACCEPT = 5, 50, 0.95
# Table students (a deviation from the Plan, decided before any table run, README "Deviations"):
# the selection's 300-step students had their best validation at steps 200-300 of 300 (none
# converged), so the table's students get a 1000-step ceiling and early stopping after
# TABLE_PATIENCE validations (every EVAL_EVERY steps) without improvement.
TABLE_STUDENT_STEPS, TABLE_PATIENCE = 1000, 5
# w_tv per element: round 1's sum-scale 0.01, 0.03, 0.1 on FSDD x sqrt(FSDD_ELEMENTS) (the same
# objectives on FSDD), 3 decimals: 0.636, 1.907 (round 1's value; the config default is 1.90683),
# 6.356
W_TV_GRID = tuple(round(w * frami.FSDD_ELEMENTS**0.5, 3) for w in (0.01, 0.03, 0.1))
W_TV_TIE = W_TV_GRID[1]  # a tie goes to round 1's value
SELECT_MIXUP = 0.4  # student_mixup of the w_tv selection (round 1's value)
MIXUPS, MIXUP_TIE = (0.0, 0.4), 0.0
TIE_TOL = 1e-9  # validation means closer than this are a tie
PRIMARY = ("inv_di", "di", "inv_frami", "frami")
SECONDARY = ("cont", "hidden", "inv_adv", "adv")
REFERENCE = ("real",)
TABLE_ORDER = PRIMARY + SECONDARY + REFERENCE
INVERSIONS = ("inv_di", "inv_frami", "inv_adv")
FILES = ("result.json", "metrics.jsonl")


Deadline = round2.Deadline  # raised by round2.run when `--deadline` has passed


class Rejected(Exception):
    """An inversion set failed the acceptance check: the data set stops (the Plan's rule)."""


def code(x: float) -> str:
    """A float as a folder-name fragment: 1.907 -> '1p907', 0.0 -> '0'."""
    return f"{x:g}".replace(".", "p")


def setting_name(w_tv: float, mixup: float) -> str:
    """The selection setting's folder name, e.g. `tv1p907_mix0p4`."""
    return f"tv{code(w_tv)}_mix{code(mixup)}"


def config_arg(data: str, stage: str, seeds: int, settings: dict | None = None) -> str:
    """The `configs/frami.py` argument string of one command.

    Args:
      data: fsdd | sc12 | esc10 (variant=local).
      stage: the stage name (`stage=`).
      seeds: `seeds=` (k + 1 runs seed folders 0..k; finished ones are skipped).
      settings: None for the teacher (its config reads none of them), else
        `{w_tv, student_mixup, inv_steps}`; the student validation cadence and the acceptance
        check (`student_eval_every=50,accept=0.95,on_reject=stop`) are added; optional
        `student_steps` and `patience` (the table's students) are appended when present.
    """
    arg = f"variant=local,data={data}"
    if settings is not None:
        arg += (f",w_tv={settings['w_tv']:g},student_mixup={settings['student_mixup']:g},"
                f"inv_steps={int(settings['inv_steps'])},student_eval_every={EVAL_EVERY},"
                f"accept={ACCEPT:g},on_reject=stop")
        for key in ("student_steps", "patience"):
            if key in settings:
                arg += f",{key}={int(settings[key])}"
    return arg + f",seeds={seeds},stage={stage}"


def command(data: str, stage: str, wd: pathlib.Path | str, seeds: int = 1,
            settings: dict | None = None, seed: int | None = None,
            python: str = sys.executable) -> list[str]:
    """The exact `kdjax.main` command of one run (the only place commands are built).

    Args:
      data, stage, seeds, settings: see `config_arg`.
      wd: the workdir.
      seed: if given, `--config.stages.<stage>.seed=<seed>` (the selection's seeds 100, 101).
      python: the interpreter.
    """
    cmd = [python, "-m", "kdjax.main", f"--config=configs/frami.py:{config_arg(data, stage, seeds, settings)}"]
    if seed is not None:
        cmd.append(f"--config.stages.{stage}.seed={seed}")
    return cmd + [f"--workdir={wd}"]


def selection_commands(work: pathlib.Path, w_tv: float, mixup: float,
                       inv_steps: int = frami.LOCAL_INV_STEPS) -> list[tuple[str, pathlib.Path, list[str]]]:
    """(stage, workdir, command) of one selection setting: `inv_di` then `di`, seeds 100, 101
    (a mixup-0 setting reuses the chosen w_tv's sets: only `di`; its `inv_di` is linked)."""
    wd = select_workdir(work, w_tv, mixup, inv_steps)
    s = dict(w_tv=w_tv, student_mixup=mixup, inv_steps=inv_steps)
    stages = ("inv_di", "di") if mixup == SELECT_MIXUP else ("di",)
    return [(st, wd, command(SELECT_DATA, st, wd, SELECT_SEEDS, s, seed=SELECT_SEED)) for st in stages]


def select_workdir(work: pathlib.Path, w_tv: float, mixup: float, inv_steps: int) -> pathlib.Path:
    """`WORK/fsdd/select_<setting>[_inv<N>]`."""
    return pathlib.Path(work) / SELECT_DATA / f"select_{setting_name(w_tv, mixup)}{_suffix(inv_steps)}"


def table_commands(work: pathlib.Path, data: str, chosen: dict,
                   inv_steps: int = frami.LOCAL_INV_STEPS) -> list[tuple[int, str, pathlib.Path, list[str]]]:
    """(seed k, stage, run folder, command) of the table of `data`, in the Plan's order
    (seed-major, TABLE_ORDER per seed), with `chosen = {w_tv, student_mixup}`."""
    wd = table_workdir(work, data, inv_steps)
    s = dict(w_tv=chosen["w_tv"], student_mixup=chosen["student_mixup"], inv_steps=inv_steps,
             student_steps=TABLE_STUDENT_STEPS, patience=TABLE_PATIENCE)
    return [(k, st, wd / st / f"seed{k}", command(data, st, wd, k + 1, s))
            for k in range(SEEDS) for st in TABLE_ORDER]


def table_workdir(work: pathlib.Path, data: str, inv_steps: int) -> pathlib.Path:
    """`WORK/<data>/table[_inv<N>]`."""
    return pathlib.Path(work) / data / f"table{_suffix(inv_steps)}"


def _suffix(inv_steps: int) -> str:
    """'' at the Plan's LOCAL_INV_STEPS, else `_inv<N>` (the failure rule's reruns)."""
    return "" if int(inv_steps) == frami.LOCAL_INV_STEPS else f"_inv{int(inv_steps)}"


def out_dir(data: str, inv_steps: int) -> pathlib.Path:
    """The committed per-run folder of a table: `round2/<data>[_inv<N>]`."""
    return HERE / f"{data}{_suffix(inv_steps)}"


def choose_w_tv(runs: dict[float, dict]) -> float | None:
    """The eligible w_tv with the highest mean validation accuracy; a tie goes to W_TV_TIE
    (round 1's value) when it is among the best, else to the smaller w_tv.

    Args:
      runs: w_tv -> `{"eligible": bool, "criterion": mean validation accuracy or None}`.

    Returns:
      The chosen w_tv, or None when no setting is eligible (every one had a rejected set).
    """
    ok = {w: r["criterion"] for w, r in runs.items() if r["eligible"] and r["criterion"] is not None}
    if not ok:
        return None
    best = max(ok.values())
    tied = sorted(w for w, v in ok.items() if best - v <= TIE_TOL)
    return W_TV_TIE if W_TV_TIE in tied else tied[0]


def choose_mixup(criteria: dict[float, float]) -> float:
    """The student_mixup with the highest mean validation accuracy; a tie goes to MIXUP_TIE (0).

    Args:
      criteria: mixup -> mean validation accuracy of the di students.
    """
    best = max(criteria.values())
    tied = sorted(m for m, v in criteria.items() if best - v <= TIE_TOL)
    return MIXUP_TIE if MIXUP_TIE in tied else tied[0]


def acceptance(run_dir: pathlib.Path) -> dict:
    """`{teacher_accuracy_on_targets, accepted, time_s, samples_per_s, num_samples}` of one
    inversion run (its result.json `summary`, kdjax.train.invert)."""
    s = json.loads((pathlib.Path(run_dir) / "result.json").read_text())["summary"]
    return {k: s.get(k) for k in ("teacher_accuracy_on_targets", "accepted", "time_s",
                                  "samples_per_s", "num_samples")}


def student_validation(run_dir: pathlib.Path) -> dict:
    """`{validation, best_step, last_step, converged}` of one student run: the best-by-validation
    parameters' validation accuracy (result.json; test numbers are not read)."""
    r = json.loads((pathlib.Path(run_dir) / "result.json").read_text())
    m = r["models"]["student"]
    return dict(validation=m["validation"]["accuracy"], best_step=m["best_step"],
                last_step=r["last_step"], converged=m["converged"])


def _link(src: pathlib.Path, dst: pathlib.Path) -> None:
    """`dst` a symlink to `src` (nothing if `dst` exists); creates `dst`'s folder."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists():
        os.symlink(src.resolve(), dst)


def main(work: str, data: str = "fsdd", deadline: str = "", only: str = "",
         inv_steps: int = frami.LOCAL_INV_STEPS) -> None:
    """Runs (or resumes) the Plan's teacher, selection (fsdd) and table of `data` under `work`.

    Raises:
      Deadline: `deadline` (HH:MM UTC) passed before a run.
      Rejected: an inversion set of the table (or every selection setting) was rejected.
      FileNotFoundError: a table of sc12 / esc10 without round2/selection.json.
      subprocess.CalledProcessError: a run failed.
    """
    if data not in DATASETS:
        raise ValueError(f"--data {data!r}: expected one of {DATASETS}")
    work = pathlib.Path(work).resolve()
    log_path = HERE / f"run_{data}.log"
    out = out_dir(data, inv_steps)

    stop_at = round2.deadline_time(deadline) if deadline else None

    def run(cmd: list[str]) -> None:
        round2.run(log_path, cmd, stop_at)

    base = work / data / "base"
    if not (base / "teacher" / "result.json").is_file():
        run(command(data, "teacher", base))
    round2.copy_files(base / "teacher", out / "teacher", FILES)

    sel_path = HERE / "selection.json"
    if data == SELECT_DATA and only != "table" and not sel_path.is_file():
        _select(work, base, inv_steps, run, log_path, sel_path)
    if only == "select":
        return
    if not sel_path.is_file():
        raise FileNotFoundError(f"{sel_path}: no selection yet (run --data {SELECT_DATA} first)")
    chosen = json.loads(sel_path.read_text())["chosen"]
    round2.log(log_path, f"table {data}: w_tv={chosen['w_tv']:g}, student_mixup={chosen['student_mixup']:g}, "
                         f"inv_steps={inv_steps}")
    _link(base / "teacher", table_workdir(work, data, inv_steps) / "teacher")
    for k, st, run_dir, cmd in table_commands(work, data, chosen, inv_steps):
        if not (run_dir / "result.json").is_file():
            run(cmd)
        round2.copy_files(run_dir, out / st / f"seed{k}", FILES, required=True)
        if st in INVERSIONS:
            a = acceptance(run_dir)
            round2.log(log_path, f"{data} {st} seed {k}: teacher accuracy on targets "
                                 f"{a['teacher_accuracy_on_targets']:.4f} ({'accepted' if a['accepted'] else 'REJECTED'}), "
                                 f"{a['time_s']:.0f} s, {a['samples_per_s']:.3f} samples/s")
            if not a["accepted"]:
                nxt = {frami.LOCAL_INV_STEPS: 2000, 2000: 4000}.get(inv_steps)
                round2.log(log_path, f"REJECTED set {run_dir}: data set {data} stopped (the Plan's rule). "
                           + (f"Rerun ALL its sets: --inv-steps {nxt}" if nxt else
                              "No further rerun: no verdict for this data set (inversions not converged)"))
                raise Rejected(str(run_dir))
        if st == TABLE_ORDER[-1]:
            round2.log(log_path, f"{data} seed {k}: all {len(TABLE_ORDER)} runs finished")
    round2.log(log_path, f"{data}: table runs finished")


def _select(work, base, inv_steps, run, log_path, sel_path) -> None:
    """The selection (module docstring, 1): writes `sel_path`. Raises Rejected when no w_tv
    setting is eligible."""
    runs: dict[float, dict] = {}
    for w in W_TV_GRID:
        name = setting_name(w, SELECT_MIXUP)
        rec = dict(w_tv=w, student_mixup=SELECT_MIXUP, inversions={}, students={}, eligible=True,
                   criterion=None)
        for st, wd, cmd in selection_commands(work, w, SELECT_MIXUP, inv_steps):
            _link(base / "teacher", wd / "teacher")
            if st == "di" and not rec["eligible"]:
                break  # a rejected set: no student
            if not all((wd / st / f"seed{k}" / "result.json").is_file() for k in range(SELECT_SEEDS)):
                run(cmd)
            for k in range(SELECT_SEEDS):
                rd = wd / st / f"seed{k}"
                round2.copy_files(rd, HERE / "select" / name / st / f"seed{k}", FILES, required=True)
                if st == "inv_di":
                    a = acceptance(rd)
                    rec["inversions"][str(SELECT_SEED + k)] = a
                    rec["eligible"] &= bool(a["accepted"])
                else:
                    rec["students"][str(SELECT_SEED + k)] = student_validation(rd)
        if rec["students"]:
            rec["criterion"] = sum(v["validation"] for v in rec["students"].values()) / SELECT_SEEDS
        runs[w] = rec
        round2.log(log_path, f"selection {name}: eligible {rec['eligible']} (acceptance "
                   f"{[round(a['teacher_accuracy_on_targets'], 4) for a in rec['inversions'].values()]}), "
                   f"mean best validation {rec['criterion']}")
    w_tv = choose_w_tv(runs)
    if w_tv is None:
        nxt = {frami.LOCAL_INV_STEPS: 2000, 2000: 4000}.get(inv_steps)
        round2.log(log_path, "selection: every w_tv setting has a REJECTED set; no choice. "
                   + (f"Rerun with --inv-steps {nxt}" if nxt else "No further rerun."))
        raise Rejected("selection: no eligible w_tv")
    mix_runs = {SELECT_MIXUP: runs[w_tv]}
    for m in MIXUPS:
        if m == SELECT_MIXUP:
            continue
        name = setting_name(w_tv, m)
        rec = dict(w_tv=w_tv, student_mixup=m, inversions=f"those of {setting_name(w_tv, SELECT_MIXUP)} (linked)",
                   students={}, eligible=True)
        for st, wd, cmd in selection_commands(work, w_tv, m, inv_steps):
            _link(base / "teacher", wd / "teacher")
            _link(select_workdir(work, w_tv, SELECT_MIXUP, inv_steps) / "inv_di", wd / "inv_di")
            if not all((wd / st / f"seed{k}" / "result.json").is_file() for k in range(SELECT_SEEDS)):
                run(cmd)
            for k in range(SELECT_SEEDS):
                rd = wd / st / f"seed{k}"
                round2.copy_files(rd, HERE / "select" / name / st / f"seed{k}", FILES, required=True)
                rec["students"][str(SELECT_SEED + k)] = student_validation(rd)
        rec["criterion"] = sum(v["validation"] for v in rec["students"].values()) / SELECT_SEEDS
        mix_runs[m] = rec
        round2.log(log_path, f"selection {name}: mean best validation {rec['criterion']}")
    mixup = choose_mixup({m: r["criterion"] for m, r in mix_runs.items()})
    sel = dict(
        data=SELECT_DATA, seeds=[SELECT_SEED + k for k in range(SELECT_SEEDS)], inv_steps=inv_steps,
        arm="di", w_tv_grid=list(W_TV_GRID), mixups=list(MIXUPS), accept=ACCEPT,
        criterion="mean over the selection seeds of the di student's best validation accuracy "
                  f"(student_eval_every={EVAL_EVERY}, best-by-validation parameters); a setting with a "
                  f"rejected inversion set (teacher accuracy on its targets < {ACCEPT}) is not eligible; "
                  f"tie -> w_tv {W_TV_TIE:g} (round 1), then student_mixup {MIXUP_TIE:g}; test not read",
        w_tv_runs={f"{w:g}": r for w, r in runs.items()},
        mixup_runs={f"{m:g}": r for m, r in mix_runs.items() if m != SELECT_MIXUP},
        chosen=dict(w_tv=w_tv, student_mixup=mixup),
        commands=[" ".join(c[3:]) for w in W_TV_GRID for _, _, c in selection_commands(
            pathlib.Path("WORK"), w, SELECT_MIXUP, inv_steps)]
        + [" ".join(c[3:]) for m in MIXUPS if m != SELECT_MIXUP
           for _, _, c in selection_commands(pathlib.Path("WORK"), w_tv, m, inv_steps)])
    sel_path.write_text(json.dumps(sel, indent=1))
    round2.log(log_path, f"selection chosen: w_tv={w_tv:g}, student_mixup={mixup:g}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work")
    ap.add_argument("--data", default="fsdd", choices=DATASETS)
    ap.add_argument("--deadline", default="", help="HH:MM UTC: start no run after it")
    ap.add_argument("--only", default="", choices=("", "select", "table"))
    ap.add_argument("--inv-steps", type=int, default=frami.LOCAL_INV_STEPS,
                    help="Adam steps per inversion batch (the failure rule's reruns: 2000, 4000)")
    a = ap.parse_args()
    try:
        main(a.work, a.data, a.deadline, a.only, a.inv_steps)
    except Deadline:
        sys.exit(0)
    except Rejected as e:
        print(f"frami round2: stopped, rejected inversion set: {e}", file=sys.stderr)
        sys.exit(3)
