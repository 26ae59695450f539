"""kdjax.report on hand-written workdirs (result.json / metrics.jsonl written here; no training)."""

from __future__ import annotations

import json
import math
import os
import re

import numpy as np
import pytest

from kdjax import report
from kdjax.report.__main__ import main as cli
from kdjax.train import stats

scipy_stats = pytest.importorskip("scipy.stats")

BASE = [0.80, 0.82, 0.78, 0.81, 0.79]
KD = [0.83, 0.84, 0.80, 0.85, 0.80]
ALT = [0.79, 0.83, 0.78, 0.80, 0.80]


def _write_run(path, acc, *, model="student", steps=400, best=200, params=1234, cm=None, time_s=10.0):
    os.makedirs(path, exist_ok=True)
    cm = cm if cm is not None else [[3, 1], [0, 4]]
    res = {"steps": steps, "train_time_s": time_s, "params": {model: params},
           "models": {model: {"best_step": best, "test": {"accuracy": acc, "loss": 0.5, "confusion_matrix": cm},
                              "validation": {"accuracy": acc + 0.01}}}}
    with open(os.path.join(path, "result.json"), "w") as f:
        json.dump(res, f)
    with open(os.path.join(path, "metrics.jsonl"), "w") as f:
        for s in range(100, steps + 1, 100):
            f.write(json.dumps({"step": s, "train/loss": 2.0 / s * 100}) + "\n")
            f.write(json.dumps({"step": s, f"val/{model}/accuracy": acc - (0.0 if s == best else 0.05)}) + "\n")


@pytest.fixture
def workdir(tmp_path):
    w = tmp_path / "wd"
    _write_run(w / "teacher", 0.95, model="teacher", steps=400, best=400, params=99999)
    for k in range(5):
        _write_run(w / "student" / f"seed{k}", BASE[k])
        _write_run(w / "kd" / f"seed{k}", KD[k])
        _write_run(w / "alt" / f"seed{k}", ALT[k], best=400 if k == 0 else 200)
    os.makedirs(w / "cache")
    (w / "cache" / "result.json").write_text(json.dumps({"kind": "cache"}))
    return str(w)


CLAIM = dict(primary=dict(arm="kd", baseline="student"), metric="test_accuracy", effect=0.02,
             direction="greater", source="a paper, Table 1",
             secondary=[dict(arm="alt", baseline="student"), dict(arm="kd", baseline="alt")])


def test_find_runs_and_convergence(workdir):
    train, other = report.find_runs(workdir)
    assert list(train) == ["alt", "kd", "student", "teacher"] and list(other) == ["cache"]
    assert [r.name for r in train["kd"]] == [f"seed{k}" for k in range(5)]
    assert train["teacher"][0].name == "" and train["teacher"][0].model() == "teacher"
    # best 200 of 400 -> converged; best at the last step -> not
    assert train["kd"][0].convergence("student", "accuracy") == {"best_step": 200, "last_step": 400, "converged": True,
                                                                 "converged_rule": "3/4 rule"}
    assert train["alt"][0].convergence("student", "accuracy")["converged"] is False


def test_convergence_from_metrics_jsonl_when_result_lacks_it(workdir):
    train, _ = report.find_runs(workdir)
    run = train["kd"][1]
    del run.result["models"]["student"]["best_step"]
    assert run.convergence("student", "accuracy") == {"best_step": 200, "last_step": 400, "converged": True,
                                                      "converged_rule": "3/4 rule"}
    run.result["converged"] = False  # the loop's own field wins
    assert run.convergence("student", "accuracy")["converged"] is False
    assert run.convergence("student", "accuracy")["converged_rule"] == "result.json"


def test_the_fallback_convergence_rule_is_labelled(workdir):
    """Runs without result.json's `converged` (the train loop's patience rule) are judged by the
    3/4 rule, and the report says so; runs that record it are shown without the label."""
    from kdjax.report import render

    claim = dict(CLAIM, primary=dict(arm="alt", baseline="student"), secondary=[])
    md = render.markdown(report.build(workdir, claim=claim), {})
    assert "| 4/5 (3/4 rule) |" in md and "not every run converged by the 3/4 rule" in md
    for stage in ("alt", "student"):
        for k in range(5):
            p = os.path.join(workdir, stage, f"seed{k}", "result.json")
            r = json.loads(open(p).read())
            r["models"]["student"]["converged"] = not (stage == "alt" and k == 0)
            open(p, "w").write(json.dumps(r))
    rep = report.build(workdir, claim=claim)
    md = render.markdown(rep, {})
    assert rep["stages"]["alt"]["converged"] == 4 and rep["stages"]["alt"]["converged_fallback"] == 0
    p = os.path.join(workdir, "teacher", "result.json")
    r = json.loads(open(p).read())
    r["models"]["teacher"]["converged"] = None  # the loop ran no validation: unknown, no fallback
    open(p, "w").write(json.dumps(r))
    md = render.markdown(report.build(workdir, claim=claim), {})
    assert next(x for x in md.splitlines() if x.startswith("| teacher |")).endswith("| 400/400 | n/a |")
    row = next(x for x in md.splitlines() if x.startswith("| alt |"))
    assert row.endswith("| 4/5 |") and "| 5/5 (3/4 rule) |" in md  # kd still has no `converged`
    assert "the interval excludes the effect, but not every run converged: no 'refuted')" in md


def test_build_numbers_match_independent_references(workdir):
    rep = report.build(workdir, claim=CLAIM, config={"run": "teacher,student,kd,alt"})
    assert list(rep["stages"]) == ["teacher", "student", "kd", "alt"]
    st = rep["stages"]["kd"]
    assert st["mean"] == pytest.approx(np.mean(KD)) and st["std"] == pytest.approx(np.std(KD, ddof=1))
    assert st["converged"] == 5 and rep["stages"]["alt"]["converged"] == 4
    assert st["params"] == 1234 and st["train_time_s"] == pytest.approx(50.0)
    comps = {(c["arm"], c["baseline"]): c for c in rep["comparisons"]}
    assert [c["role"] for c in rep["comparisons"]] == ["primary", "secondary", "secondary"]
    kd = comps[("kd", "student")]
    d = np.subtract(KD, BASE)
    lo, hi = scipy_stats.t.interval(0.95, 4, loc=d.mean(), scale=scipy_stats.sem(d))
    tol = 2.5e-4 * (hi - lo)  # the tabulated t_{0.975, 4} = 2.776
    assert kd["plain"]["ci95_low"] == pytest.approx(lo, abs=tol) and kd["plain"]["ci95_high"] == pytest.approx(hi, abs=tol)
    assert kd["nadeau_bengio"] is None  # seeds, not folds
    # Holm over the two secondaries, by hand: sorted p's times (2, 1), made monotone
    ps = [scipy_stats.ttest_rel(ALT, BASE).pvalue, scipy_stats.ttest_rel(KD, ALT).pvalue]
    order = np.argsort(ps)
    adj = np.empty(2)
    adj[order[0]] = min(1, 2 * ps[order[0]])
    adj[order[1]] = min(1, max(adj[order[0]], ps[order[1]]))
    assert [comps[("alt", "student")]["holm_p"], comps[("kd", "alt")]["holm_p"]] == pytest.approx(adj)
    # +0.024 [+0.0086, +0.0394]: excludes 0 -> reproduced
    assert lo > 0 and rep["verdict"]["verdict"] == "reproduced" and kd["verdict"] == "reproduced"


def test_verdict_inconclusive_says_how_many_runs(workdir):
    claim = dict(CLAIM, primary=dict(arm="alt", baseline="student"), secondary=[])
    rep = report.build(workdir, claim=claim)
    v, c = rep["verdict"], rep["comparisons"][0]
    assert v["verdict"] == "inconclusive" and not v["converged"]  # alt seed0 did not converge
    assert v["runs_to_decide"] == stats.runs_to_decide(c["plain"]["std"], 0.02, c["plain"]["mean"])
    # alt - student: mean 0, SD 0.01: [-0.0124, +0.0124] already excludes +0.02 (n = 4 would do),
    # but one alt run peaked at its last step: "inconclusive", and the report says why
    assert v["runs_to_decide"] == 4 and v["more_runs"] == 0
    from kdjax.report import render

    md = render.markdown(rep, {})
    assert "the interval excludes the effect, but not every run converged" in md


def test_folds_get_the_nadeau_bengio_interval(tmp_path):
    w = tmp_path / "cv"
    for f in range(1, 6):
        _write_run(w / "none" / f"fold{f}", BASE[f - 1])
        _write_run(w / "kd" / f"fold{f}", KD[f - 1])
    rep = report.build(str(w), claim=dict(CLAIM, secondary=[], primary=dict(arm="kd", baseline="none")))
    c = rep["comparisons"][0]
    nb = c["nadeau_bengio"]
    d = np.subtract(KD, BASE)
    se = math.sqrt((1 / 5 + 1 / 4) * d.var(ddof=1))  # 5 folds: test/train = 1/4
    assert nb["half_width"] == pytest.approx(2.776 * se)  # t_{0.975, 4}
    assert rep["verdict"]["interval"] == "nadeau_bengio"


def test_write_report_md_html_and_pngs(workdir, tmp_path):
    out = tmp_path / "out"
    rep = report.write_report(workdir, str(out), claim=CLAIM, config={"run": "teacher,student,kd,alt"})
    md = (out / "report.md").read_text()
    assert "| kd | student | 1,234 | 5 | accuracy 0.8240 +- 0.0230 | 0.8300, 0.8400, 0.8000, 0.8500, 0.8000 |" in md
    assert "**Verdict: reproduced**" in md and "| kd - student | primary | 5 | +0.0240 |" in md
    for name in ("forest", "learning_val", "learning_loss", "confusion"):
        png = out / "figures" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"figures/{name}.png" in md
    assert json.loads((out / "report.json").read_text())["verdict"]["verdict"] == "reproduced"
    assert json.loads((out / "config.json").read_text())["run"] == "teacher,student,kd,alt"
    assert str(out / "report.md") in rep["files"]
    # html: self-contained, images embedded
    report.write_report(workdir, str(out), "html", claim=CLAIM, figures=True)
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4 and "<table>" in page
    # cells wrap between values, never inside one (non-breaking spaces in +-, intervals, the rule)
    assert "<td>accuracy 0.8240\u00a0±\u00a00.0230</td>" in page
    assert re.search(r"<td>\[\+0\.\d{4},\u00a0\+0\.\d{4}\]</td>", page)
    assert "5/5\u00a0(3/4\u00a0rule)" in page


def test_cli_reads_stored_config_and_reports_errors(workdir, tmp_path, capsys):
    report.write_report(workdir, workdir, config={"run": "teacher,student,kd,alt", "claim": CLAIM}, figures=False)
    assert cli([workdir, "--out", str(tmp_path / "o"), "--no-figures"]) == 0
    assert "**Verdict: reproduced**" in (tmp_path / "o" / "report.md").read_text()
    assert cli([str(tmp_path / "nope")]) == 1
    assert "not a folder" in capsys.readouterr().err
    assert cli([workdir, "--compare", "kd"]) == 1
    assert cli([workdir, "--compare", "kd:ghost", "--no-figures"]) == 1
    assert "no finished train run of stage 'ghost'" in capsys.readouterr().err


def test_bad_claims_are_named():
    with pytest.raises(ValueError, match="claim.direction"):
        report.check_claim(dict(CLAIM, direction="up"))
    with pytest.raises(ValueError, match="claim.primary"):
        report.check_claim(dict(CLAIM, primary="kd"))
    with pytest.raises(ValueError, match="unknown field"):
        report.check_claim(dict(CLAIM, effct=1))


def test_readme_block_links_pictures_from_the_readme(workdir, tmp_path):
    res = tmp_path / "results"
    res.mkdir()
    own = res / "attention.png"
    own.write_bytes(b"\x89PNG\r\n\x1a\n")
    (res / "README.md").write_text("prose\n<!-- kdjax.report:begin d -->\n<!-- kdjax.report:end d -->\nmore\n")
    report.readme_block(str(res / "README.md"), "d", workdir, str(res / "report" / "d"), claim=CLAIM,
                        pictures={"rollout attention (a recipe's own picture)": str(own)})
    text = (res / "README.md").read_text()
    assert text.startswith("prose\n<!-- kdjax.report:begin d -->\n### Report: wd") and text.endswith("more\n")
    assert "![forest](report/d/figures/forest.png)" in text
    assert "![rollout_attention_a_recipe_s_own_picture](attention.png)" in text
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (res / link).is_file(), link
    with pytest.raises(FileNotFoundError, match="nope.png"):
        report.write_report(workdir, str(tmp_path / "x"), figures=False, pictures={"p": str(res / "nope.png")})


def test_readme_without_markers_is_left_whole(workdir, tmp_path):
    """A README without the block's markers is an error that leaves the README as it was (the
    prose of a results README must never be lost to a typo in --block)."""
    readme = tmp_path / "README.md"
    readme.write_text("# Plan\nprose written before the runs\n")
    with pytest.raises(ValueError, match="no block <!-- kdjax.report:begin d -->"):
        report.readme_block(str(readme), "d", workdir, str(tmp_path / "report"), claim=CLAIM,
                            figures=False)
    assert readme.read_text() == "# Plan\nprose written before the runs\n"
    assert not (tmp_path / "README.md.tmp").exists()


def test_replace_block_is_repeatable():
    text = "intro\n<!-- kdjax.report:begin t -->\nold\n<!-- kdjax.report:end t -->\nprose\n"
    once = report.replace_block(text, "t", "new table")
    assert once == "intro\n<!-- kdjax.report:begin t -->\nnew table\n<!-- kdjax.report:end t -->\nprose\n"
    assert report.replace_block(once, "t", "new table") == once
    with pytest.raises(ValueError, match="kdjax.report:begin x"):
        report.replace_block(text, "x", "")


def test_partial_workdir_reports_what_is_missing(workdir, tmp_path):
    import shutil

    shutil.rmtree(os.path.join(workdir, "student"))  # e.g. `stage=kd` run alone
    out = tmp_path / "partial"
    rep = report.write_report(workdir, str(out), claim=CLAIM, figures=False)
    assert rep["verdict"] is None and [c["arm"] for c in rep["comparisons"]] == ["kd"]  # kd - alt
    md = (out / "report.md").read_text()
    assert "No verdict: the claim's comparison kd - student" in md
    assert "Not compared (no finished run of kd - student: student; alt - student: student)" in md
    shutil.rmtree(os.path.join(workdir, "alt"))
    md = report.write_report(workdir, str(out), claim=CLAIM, figures=False)["markdown"]
    assert "No comparison has finished runs in both arms yet." in md and "No comparisons (no claim" not in md


def test_stages_the_config_does_not_run_are_not_listed_as_missing(workdir):
    """A config's optional arm (defined with a `baseline`, not in `run`, never run) is no
    'Not compared' entry; the same arm in `run` but not finished is (test fails on the old code)."""
    stages = {"student": {}, "kd": {"baseline": "student"}, "opt": {"baseline": "student"}}
    rep = report.build(workdir, config={"run": "student,kd", "stages": stages})
    assert rep["missing_comparisons"] == [] and [c["arm"] for c in rep["comparisons"]] == ["kd"]
    rep = report.build(workdir, config={"run": "student,kd,opt", "stages": stages})
    assert rep["missing_comparisons"] == [{"arm": "opt", "baseline": "student", "role": "secondary",
                                           "absent": ["opt"]}]


def test_peers_get_one_row_and_one_comparison_each(tmp_path):
    w = tmp_path / "peers"
    for k in range(3):
        for arm, shift in (("alone", 0.0), ("joint", 0.05)):
            path = w / arm / f"seed{k}"
            _write_run(path, 0.5)
            r = json.loads((path / "result.json").read_text())
            r["models"] = {"stft": {"test": {"accuracy": BASE[k] + shift}},
                           "mfcc": {"test": {"accuracy": KD[k] + (shift if k else 0.0)}}}
            r["params"] = {"stft": 10, "mfcc": 20}
            (path / "result.json").write_text(json.dumps(r))
    claim = dict(CLAIM, primary=dict(arm="joint", baseline="alone"), secondary=[])
    rep = report.build(str(w), claim=claim)
    assert list(rep["stages"]) == ["alone", "alone/mfcc", "joint", "joint/mfcc"]
    assert [c["label"] for c in rep["comparisons"]] == ["joint - alone [stft]", "joint - alone [mfcc]"]
    assert [v["label"] for v in rep["verdicts"]] == ["joint - alone [stft]", "joint - alone [mfcc]"]
    assert rep["comparisons"][0]["plain"]["mean"] == pytest.approx(0.05)
    assert rep["comparisons"][1]["plain"]["mean"] == pytest.approx(0.1 / 3)


def test_borrowed_stage_is_read_from_another_folder(workdir, tmp_path, capsys):
    import shutil

    shared = tmp_path / "shared_student"
    shutil.move(os.path.join(workdir, "student"), shared)
    out = tmp_path / "borrow"
    assert cli([workdir, "--out", str(out), "--no-figures", "--compare", "kd:student",
                "--stage", f"student={shared}"]) == 0
    md = (out / "report.md").read_text()
    assert f"; stage `student` from `{shared}`." in md and "| kd - student | secondary | 5 | +0.0240 |" in md
    assert cli([workdir, "--stage", "student"]) == 1
    assert "expected NAME=DIR" in capsys.readouterr().err


def test_a_single_run_workdir_is_one_stage(tmp_path):
    _write_run(tmp_path / "solo", 0.9)
    rep = report.build(str(tmp_path / "solo"))
    assert list(rep["stages"]) == ["solo"] and rep["stages"]["solo"]["mean"] == pytest.approx(0.9)
    assert rep["comparisons"] == [] and rep["verdict"] is None


def test_without_matplotlib_the_tables_are_still_written(workdir, tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    monkeypatch.delitem(sys.modules, "kdjax.report.figures", raising=False)
    monkeypatch.delattr(report, "figures", raising=False)  # the package's cached submodule too
    rep = report.write_report(workdir, str(tmp_path / "nompl"), claim=CLAIM)
    assert "**Verdict: reproduced**" in rep["markdown"] and "## Pictures" not in rep["markdown"]
    assert not (tmp_path / "nompl" / "figures").exists() and "no pictures" in capsys.readouterr().err


def test_summary_json_carries_last_step_and_converged(tmp_path):
    """A summary.json written since early stopping records each run's last step and whether it
    converged (kdjax.train.summary); the report reads them instead of showing n/a."""
    def runs(vals, conv):
        return [{"seed": k, "test": v, "validation": 0.9, "best_step": 200, "last_step": 600,
                 "converged": c, "train_time_s": 1.0, "models": {"student": v}}
                for k, (v, c) in enumerate(zip(vals, conv, strict=True))]
    stages = {"student": {"model": "student", "metric": "accuracy", "params": 1, "runs": runs(BASE, [True] * 5)},
              "kd": {"model": "student", "metric": "accuracy", "params": 1,
                     "runs": runs(KD, [True, True, False, True, True])}}
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"stages": stages, "seeds": 5}))
    rep = report.build(str(path), claim=dict(CLAIM, secondary=[]))
    assert [r["last_step"] for r in rep["stages"]["kd"]["runs"]] == [600] * 5
    assert rep["stages"]["kd"]["converged"] == 4 and rep["stages"]["kd"]["converged_known"] == 5
    assert rep["verdict"]["convergence_known"] is True and rep["verdict"]["converged"] is False


def test_summary_json_of_the_stages_is_a_source_too(workdir, tmp_path):
    """kdjax.train.stages' summary.json (results kept without run folders, e.g. FRAMI's) gives
    the same paired numbers as the run folders it summarises."""
    stages = {"student": {"model": "student", "metric": "accuracy", "params": 1234,
                          "runs": [{"seed": k, "test": BASE[k], "validation": None, "best_step": 200,
                                    "train_time_s": 10.0, "models": {"student": BASE[k]}} for k in range(5)]},
              "kd": {"model": "student", "metric": "accuracy", "params": 1234,
                     "runs": [{"seed": k, "test": KD[k], "validation": 0.9, "best_step": 200,
                               "train_time_s": 10.0, "models": {"student": KD[k]}} for k in range(5)]},
              "inv": {"kind": "invert", "runs": [{"n": 3}]}}
    path = tmp_path / "x_summary.json"
    path.write_text(json.dumps({"summary": {"stages": stages, "seeds": 5}, "other": 1}))
    claim = dict(CLAIM, secondary=[])
    from_summary = report.build(str(path), claim=claim)
    from_runs = report.build(workdir, claim=claim)
    assert from_summary["comparisons"][0]["plain"] == from_runs["comparisons"][0]["plain"]
    assert from_summary["verdict"]["verdict"] == "reproduced" and from_summary["other_stages"] == {"inv": 1}
    assert from_summary["stages"]["kd"]["runs"][0]["last_step"] is None  # not in a summary: n/a
    assert from_summary["verdict"]["convergence_known"] is False and from_runs["verdict"]["convergence_known"]
    out = tmp_path / "res"
    readme = tmp_path / "README.md"
    readme.write_text("<!-- kdjax.report:begin x -->\n<!-- kdjax.report:end x -->\n")
    (tmp_path / "grid.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    assert cli([str(path), "--out", str(out), "--readme", str(readme), "--block", "x",
                "--compare", "kd:student", "--picture", f"mel grid (a=b)={tmp_path / 'grid.png'}"]) == 0
    text = readme.read_text()
    assert "| kd - student | secondary | 5 | +0.0240 |" in text
    assert "mel grid (a=b):\n\n![mel_grid_a_b](grid.png)" in text
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="no 'stages'"):
        report.build(str(bad))


def test_confusion_is_summed_over_runs_and_curves_read_metrics_jsonl(workdir):
    from kdjax.report import figures

    train, _ = report.find_runs(workdir)
    train["kd"][0].result["models"]["student"]["test"]["confusion_matrix"] = [[1, 0], [2, 5]]
    rep = report.build(workdir)
    sums = figures.summed_confusion(train, rep)
    model, cm, n = sums["kd"]
    assert model == "student" and n == 5 and cm.tolist() == [[3 * 4 + 1, 1 * 4], [0 * 4 + 2, 4 * 4 + 5]]
    assert "teacher" in sums and "cache" not in sums
    del train["alt"][2].result["models"]["student"]["test"]["confusion_matrix"]
    assert "alt" not in figures.summed_confusion(train, rep)  # one run without it: no panel
    steps, loss = train["kd"][0].curve("train/loss")
    assert steps == [100, 200, 300, 400] and loss == pytest.approx([2.0, 1.0, 2 / 3, 0.5])
    assert train["kd"][0].curve("val/student/accuracy")[1] == pytest.approx([0.78, 0.83, 0.78, 0.78])


def test_learning_curves_tick_the_logged_steps(workdir, monkeypatch, tmp_path):
    """Few validations: the step axis is ticked at exactly the logged steps (a single logged
    step used to get ticks 1.900 ... 2.100); the first column carries the y label."""
    from kdjax.report import figures

    saved = []
    monkeypatch.setattr(figures, "_save", lambda fig, path, panels=1: saved.append(fig) or path)
    train, _ = report.find_runs(workdir)
    rep = report.build(workdir)
    figures.learning_curves(train, rep, "train/loss", str(tmp_path / "x.png"))
    axes = [ax for ax in saved[0].axes if ax.lines]
    assert [list(ax.get_xticks()) for ax in axes] == [[100, 200, 300, 400]] * len(axes)
    assert axes[0].get_ylabel() == "train loss" and axes[1].get_ylabel() == ""
