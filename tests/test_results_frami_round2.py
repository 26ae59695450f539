"""configs/results/frami/round2: the driver's commands are the README Plan's (selection on FSDD
validation with seeds 100/101, the table's order and settings), the selection follows the
criterion with its rejected-set and tie rules (checked with a stubbed runner that writes fake
result.json files), a rejected table set stops the data set, and the table builder's numbers
equal hand computations (scipy's paired t interval, statsmodels' Holm) on a fake tree."""

import json
import pathlib
import re

import numpy as np
import pytest

from configs import frami
from configs.results import round2
from configs.results.frami.round2 import run as drv

PY = "python"


def _arg(cmd):
    return cmd[3].split(":", 1)[1]


def test_selection_commands_are_the_plan():
    assert drv.W_TV_GRID == (0.636, 1.907, 6.356) and drv.W_TV_TIE == 1.907
    cmds = drv.selection_commands(pathlib.Path("WORK"), 0.636, 0.4)
    common = ("variant=local,data=fsdd,w_tv=0.636,student_mixup=0.4,inv_steps=1000,"
              "student_eval_every=50,accept=0.95,on_reject=stop,seeds=2")
    assert [c[0] for c in cmds] == ["inv_di", "di"]
    assert [c[2][3:] for c in cmds] == [
        [f"--config=configs/frami.py:{common},stage=inv_di", "--config.stages.inv_di.seed=100",
         "--workdir=WORK/fsdd/select_tv0p636_mix0p4"],
        [f"--config=configs/frami.py:{common},stage=di", "--config.stages.di.seed=100",
         "--workdir=WORK/fsdd/select_tv0p636_mix0p4"]]
    assert cmds[0][2][:3] == [drv.sys.executable, "-m", "kdjax.main"]
    mix0 = drv.selection_commands(pathlib.Path("WORK"), 1.907, 0.0)  # students only
    assert len(mix0) == 1 and mix0[0][2][3:] == [
        "--config=configs/frami.py:variant=local,data=fsdd,w_tv=1.907,student_mixup=0,inv_steps=1000,"
        "student_eval_every=50,accept=0.95,on_reject=stop,seeds=2,stage=di",
        "--config.stages.di.seed=100", "--workdir=WORK/fsdd/select_tv1p907_mix0"]
    # the config these arguments give: per-element TV weight, acceptance, validation every 50
    c = frami.get_config(_arg(cmds[0][2]))
    assert c.stages.inv_di.losses.tv.weight == 0.636 and c.stages.inv_di.losses.tv.kw.per_element
    assert c.stages.inv_di.invert.accept_accuracy == 0.95 and c.stages.inv_di.invert.on_reject == "stop"
    assert c.stages.inv_di.invert.steps == 1000 and c.stages.di.mixup_alpha == 0.4
    assert c.stages.di.eval_every == 50 and c.stages.di.num_steps == 300
    assert frami.get_config(_arg(mix0[0][2])).stages.di.mixup_alpha == 0.0
    # the claim's Holm family is the Plan's: three arms against DI, and frami - cont
    assert [(d["arm"], d["baseline"]) for d in c.claim["secondary"]] == [
        ("cont", "di"), ("hidden", "di"), ("adv", "di"), ("frami", "cont")]
    assert (c.claim["primary"]["arm"], c.claim["primary"]["baseline"], c.claim["effect"]) == ("frami", "di", 0.02)
    # the seed override: run k has seed 100 + k, di's k-th run reads inv_di's k-th set
    from kdjax.train.stage_list import stage_runs
    with c.unlocked():
        c.stages.inv_di.seed = c.stages.di.seed = 100
    runs = stage_runs(c, "/w", names=["inv_di", "di"])
    assert [(n, k, r.seed) for n, k, _, r in runs] == [("inv_di", 0, 100), ("inv_di", 1, 101),
                                                       ("di", 0, 100), ("di", 1, 101)]
    assert runs[3][3].data.train_source.kw.root == "/w/inv_di/seed1/synthetic"
    assert runs[3][3].teachers.t.checkpoint == "/w/teacher"


def test_table_commands_are_the_plan():
    cmds = drv.table_commands(pathlib.Path("WORK"), "fsdd", {"w_tv": 1.907, "student_mixup": 0.0})
    assert len(cmds) == 45
    order = ["inv_di", "di", "inv_frami", "frami", "cont", "hidden", "inv_adv", "adv", "real"]
    assert [st for k, st, _, _ in cmds[:9]] == order and {k for k, *_ in cmds[:9]} == {0}
    assert [k for k, *_ in cmds[::9]] == [0, 1, 2, 3, 4]
    k, st, rd, cmd = cmds[9 * 2 + 3]  # seed 2, frami
    assert (k, st, rd) == (2, "frami", pathlib.Path("WORK/fsdd/table/frami/seed2"))
    assert cmd[3:] == ["--config=configs/frami.py:variant=local,data=fsdd,w_tv=1.907,student_mixup=0,"
                       "inv_steps=1000,student_eval_every=50,accept=0.95,on_reject=stop,student_steps=1000,"
                       "patience=5,seeds=3,stage=frami",
                       "--workdir=WORK/fsdd/table"]
    c = frami.get_config(_arg(cmd))
    assert c.seeds == 3 and c.run == "frami" and c.stages.frami.eval_every == 50
    # the table's students: a 1000-step ceiling and early stopping after 5 validations
    assert c.stages.frami.num_steps == 1000 and c.stages.frami.early_stopping.patience == 5
    assert all(c.stages[s].seed == 0 for s in order)  # table seeds 0..4
    # the failure rule's rerun: inv_steps in the arguments, a new workdir
    k, st, rd, cmd = drv.table_commands(pathlib.Path("WORK"), "esc10", {"w_tv": 1.907, "student_mixup": 0.4},
                                        inv_steps=2000)[0]
    assert rd == pathlib.Path("WORK/esc10/table_inv2000/inv_di/seed0")
    assert "inv_steps=2000" in cmd[3] and cmd[-1] == "--workdir=WORK/esc10/table_inv2000"
    assert frami.get_config(_arg(cmd)).stages.inv_di.invert.steps == 2000
    assert drv.command("sc12", "teacher", "WORK/sc12/base", python=PY) == [
        PY, "-m", "kdjax.main", "--config=configs/frami.py:variant=local,data=sc12,seeds=1,stage=teacher",
        "--workdir=WORK/sc12/base"]


def test_choice_rules():
    runs = {0.636: {"eligible": False, "criterion": None},  # a rejected set: not eligible
            1.907: {"eligible": True, "criterion": 0.60},
            6.356: {"eligible": True, "criterion": 0.62}}
    assert drv.choose_w_tv(runs) == 6.356
    runs[1.907]["criterion"] = 0.62  # tie -> round 1's value
    assert drv.choose_w_tv(runs) == 1.907
    runs[0.636] = {"eligible": False, "criterion": 0.99}  # ineligible, whatever its students
    assert drv.choose_w_tv(runs) == 1.907
    assert drv.choose_w_tv({w: {"eligible": False, "criterion": None} for w in drv.W_TV_GRID}) is None
    assert drv.choose_w_tv({0.636: {"eligible": True, "criterion": 0.5},
                            6.356: {"eligible": True, "criterion": 0.5}}) == 0.636
    assert drv.choose_mixup({0.0: 0.5, 0.4: 0.5 + 1e-12}) == 0.0  # tie -> 0
    assert drv.choose_mixup({0.0: 0.5, 0.4: 0.55}) == 0.4


class FakeRunner:
    """Stands in for round2.run: records the commands and writes each run's result.json /
    metrics.jsonl as kdjax.main would (acceptance and validation accuracies from lookups)."""

    def __init__(self, acc, val, test=0.5):
        self.acc, self.val, self.test, self.cmds = acc, val, test, []

    def __call__(self, log_path, cmd, stop_at=None):
        self.cmds.append(cmd)
        arg = dict(kv.split("=", 1) for kv in _arg(cmd).split(","))
        wd = pathlib.Path(cmd[-1].split("=", 1)[1])
        m = [re.fullmatch(r"--config\.stages\.\w+\.seed=(\d+)", c) for c in cmd]
        seed0 = next((int(x.group(1)) for x in m if x), 0)
        st = arg["stage"]
        dirs = [wd / st] if st == "teacher" else [wd / st / f"seed{k}" for k in range(int(arg["seeds"]))]
        for k, d in enumerate(dirs):
            if (d / "result.json").is_file():
                continue
            d.mkdir(parents=True)
            key = (float(arg.get("w_tv", 0)), float(arg.get("student_mixup", 0)), seed0 + k)
            if st == "teacher":
                r = {"models": {"teacher": {"best_step": 400, "validation": {"accuracy": 0.96},
                                            "test": {"accuracy": 0.98}}}}
            elif st.startswith("inv_"):
                a = self.acc.get((st,) + key, 1.0)
                r = {"kind": "invert", "summary": {"teacher_accuracy_on_targets": a, "accepted": a >= 0.95,
                                                   "time_s": 900.0, "samples_per_s": 0.27, "num_samples": 240}}
            else:
                if st != "real":  # the students read their set through the workdir (links)
                    src = {"di": "inv_di", "hidden": "inv_di", "cont": "inv_frami", "frami": "inv_frami",
                           "adv": "inv_adv"}[st]
                    assert (wd / src / f"seed{k}" / "result.json").is_file(), (st, k)
                r = {"last_step": 300, "models": {"student": {
                    "best_step": 250, "converged": True, "validation": {"accuracy": self.val.get(key, 0.5)},
                    "test": {"accuracy": self.test}}}}
            (d / "result.json").write_text(json.dumps(r))
            (d / "metrics.jsonl").write_text("{}\n")


def test_selection_run_with_rejected_set_and_ties(tmp_path, monkeypatch):
    """w_tv 0.636 has a rejected set (its students would be the best: not read, not run);
    1.907 and 6.356 tie -> 1.907; mixup 0 and 0.4 tie -> 0. Then the fsdd table starts and
    stops at the first rejected set (inv_frami of seed 1), naming the rerun flag."""
    here = tmp_path / "round2"
    here.mkdir()
    monkeypatch.setattr(drv, "HERE", here)
    acc = {("inv_di", 0.636, 0.4, 101): 0.90, ("inv_frami", 1.907, 0.0, 1): 0.80}
    val = {(0.636, 0.4, 100): 0.99, (0.636, 0.4, 101): 0.99,
           (1.907, 0.4, 100): 0.60, (1.907, 0.4, 101): 0.64,
           (6.356, 0.4, 100): 0.64, (6.356, 0.4, 101): 0.60,
           (1.907, 0.0, 100): 0.62, (1.907, 0.0, 101): 0.62}
    fake = FakeRunner(acc, val)
    monkeypatch.setattr(round2, "run", fake)
    work = tmp_path / "work"
    with pytest.raises(drv.Rejected, match="inv_frami/seed1"):
        drv.main(str(work), "fsdd")
    sel = json.loads((here / "selection.json").read_text())
    assert sel["chosen"] == {"w_tv": 1.907, "student_mixup": 0.0}
    assert sel["seeds"] == [100, 101]
    assert sel["w_tv_runs"]["0.636"]["eligible"] is False and sel["w_tv_runs"]["0.636"]["students"] == {}
    assert sel["w_tv_runs"]["1.907"]["criterion"] == pytest.approx(0.62)
    assert sel["mixup_runs"]["0"]["criterion"] == pytest.approx(0.62)
    assert not (work / "fsdd/select_tv0p636_mix0p4/di").exists()
    assert (work / "fsdd/select_tv1p907_mix0/inv_di").is_symlink()
    assert '"test"' not in json.dumps(sel)  # test numbers never read
    stages = [_arg(c).split("stage=")[1] for c in fake.cmds]
    assert stages == (["teacher", "inv_di", "inv_di", "di", "inv_di", "di", "di"]
                      + ["inv_di", "di", "inv_frami", "frami", "cont", "hidden", "inv_adv", "adv", "real",
                         "inv_di", "di", "inv_frami"])
    assert "w_tv=1.907,student_mixup=0," in fake.cmds[-1][3]
    assert (here / "fsdd/frami/seed0/result.json").is_file() and (here / "fsdd/inv_frami/seed1/result.json").is_file()
    assert (here / "select/tv1p907_mix0/di/seed1/metrics.jsonl").is_file()
    log = (here / "run_fsdd.log").read_text()
    assert "REJECTED set" in log and "--inv-steps 2000" in log
    # resuming runs nothing new and stops at the same set
    n = len(fake.cmds)
    with pytest.raises(drv.Rejected):
        drv.main(str(work), "fsdd")
    assert len(fake.cmds) == n
    # sc12 transfers the choice; its inv_steps=2000 rerun has its own workdir / folder
    fake.acc = {}
    drv.main(str(work), "sc12", inv_steps=2000)
    assert (here / "sc12_inv2000/real/seed4/result.json").is_file() and (here / "sc12_inv2000/teacher").is_dir()
    assert all("w_tv=1.907,student_mixup=0,inv_steps=2000" in c[3] for c in fake.cmds[n + 1:])


def _student(root, arm, k, acc, converged=True):
    d = root / "fsdd" / arm / f"seed{k}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "result.json").write_text(json.dumps({"last_step": 300, "models": {"student": {
        "best_step": 200, "converged": converged, "test": {"accuracy": acc}, "validation": {"accuracy": acc}}}}))


def _inv(root, st, k, acc, t=600.0):
    d = root / "fsdd" / st / f"seed{k}"
    d.mkdir(parents=True)
    (d / "result.json").write_text(json.dumps({"summary": {
        "teacher_accuracy_on_targets": acc, "accepted": acc >= 0.95, "time_s": t, "samples_per_s": 240 / t,
        "num_samples": 240}}))


def test_table_numbers_are_hand_computed(tmp_path):
    from scipy import stats
    from statsmodels.stats.multitest import multipletests

    from configs.results.frami.round2.make_table import build

    md, n = build("fsdd", root=tmp_path)
    assert "Selection not finished" in md and "primary" not in n
    (tmp_path / "selection.json").write_text(json.dumps(dict(
        seeds=[100, 101], inv_steps=1000, criterion="mean", chosen={"w_tv": 1.907, "student_mixup": 0.0},
        w_tv_runs={"1.907": {"w_tv": 1.907, "student_mixup": 0.4, "eligible": True, "criterion": 0.6,
                              "inversions": {"100": {"teacher_accuracy_on_targets": 1.0}},
                              "students": {"100": {"validation": 0.6}}}},
        mixup_runs={"0": {"w_tv": 1.907, "student_mixup": 0.0, "eligible": True, "criterion": 0.61,
                          "inversions": "those", "students": {"100": {"validation": 0.61}}}})))
    t = tmp_path / "fsdd" / "teacher"
    t.mkdir(parents=True)
    (t / "result.json").write_text(json.dumps({"models": {"teacher": {
        "best_step": 400, "validation": {"accuracy": 0.96}, "test": {"accuracy": 0.9833}}}}))
    acc = dict(di=[0.60, 0.62, 0.58, 0.65], frami=[0.63, 0.66, 0.58, 0.70],
               cont=[0.61, 0.60, 0.62, 0.66], hidden=[0.59, 0.64, 0.57, 0.64], adv=[0.55], real=[0.9, 0.91])
    for arm, v in acc.items():
        for k, x in enumerate(v):
            _student(tmp_path, arm, k, x, converged=not (arm == "frami" and k == 0))
    for st in ("inv_di", "inv_frami"):
        for k in range(4):
            _inv(tmp_path, st, k, 1.0)
    md, n = build("fsdd", root=tmp_path)
    d = np.subtract(acc["frami"], acc["di"])
    q = n["primary"]["stats"]
    lo, hi = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    assert q["n"] == 4 and q["mean"] == pytest.approx(d.mean(), abs=1e-12)
    assert (q["ci95_low"], q["ci95_high"]) == pytest.approx((lo, hi), abs=2e-4)  # t975 is the table value
    assert q["p_value"] == pytest.approx(stats.ttest_rel(acc["frami"], acc["di"]).pvalue, rel=1e-6)
    assert n["primary"]["converged"] == 7 and n["primary"]["runs"] == 8
    assert lo < 0 < hi and n["primary"]["verdict"] == "inconclusive"  # [-0.0064, +0.0714]
    assert n["primary"]["runs_to_decide"] > 4
    ps, keys = [], ("cont-di", "hidden-di", "frami-cont")
    for key in keys:
        a, b = key.split("-")
        ps.append(stats.ttest_rel(acc[a], acc[b]).pvalue)
        assert n["secondary"][key]["stats"]["mean"] == pytest.approx(np.mean(np.subtract(acc[a], acc[b])))
    want = multipletests(ps, method="holm")[1]
    assert [n["secondary"][k]["holm_p"] for k in keys] == pytest.approx(list(want), rel=1e-9)
    assert n["secondary"]["adv-di"]["stats"] is None and n["secondary"]["adv-di"]["holm_p"] is None
    assert "| adv - di | 1 | -0.0500 (1 seed)" in md
    assert n["teacher"] == {"validation": 0.96, "test": 0.9833, "best_step": 400}
    assert n["arms"]["di"]["mean_std"] == f"{np.mean(acc['di']):.4f} +- {np.std(acc['di'], ddof=1):.4f}"
    assert len(n["arms"]["frami"]["converged"]) == 3
    assert n["finished_runs"] == 4 * 4 + 1 + 2 + 8 and n["planned_runs"] == 45
    assert n["inversions"]["inv_di"][0]["samples_per_s"] == pytest.approx(0.4)
    assert "Chosen: w_tv = 1.907, student_mixup = 0." in md
    # a clearer FRAMI gain is "reproduced"; a rejected set removes the verdict
    for k, x in enumerate([0.68, 0.70, 0.66, 0.73]):
        (tmp_path / "fsdd" / "frami" / f"seed{k}" / "result.json").unlink()
        _student(tmp_path, "frami", k, x)
    assert build("fsdd", root=tmp_path)[1]["primary"]["verdict"] == "reproduced"
    _inv(tmp_path, "inv_adv", 0, 0.90)
    md, n = build("fsdd", root=tmp_path)
    assert n["primary"]["verdict"] is None and n["rejected"] == ["inv_adv seed 0"]
    assert "inversions not converged" in md and "REJECTED" in md
