"""Second-round MRKD table (issue #25) from the committed per-run files; no number is typed.

Reads `configs/results/mrkd/round2/<data>/{alone,joint}/seed<k>/` (result.json, logits_test.npz;
written by `run_<data>.py`) and applies the README's Plan:
  primary    the peer-average gain: per seed, mean over the K peers of test accuracy(joint) -
             test accuracy(alone); paired 95% t interval over the seeds; verdict against the
             smallest effect of interest (`kdjax.train.stats.verdict`; a "refuted" needs most
             peer-runs converged);
  secondary  each peer's joint - alone, Holm-adjusted p-values (`kdjax.train.stats.holm`);
  convergence per arm: peer-runs whose best validation step lies >= 3 validations before the
             last (`result.json` `models.<peer>.converged`), and the best steps;
  reference  the logit-average ensembles of the alone and joint peers (descriptive).
Cross-validated data sets (`NB_RATIO`: ESC-10's folds share 3/4 of their training data) take the
verdict, the runs-to-decide and the per-peer p-values from the Nadeau-Bengio / Bouckaert-Frank
corrected interval (`kdjax.train.stats.nadeau_bengio`), the plain interval printed beside it.

Usage (repository root): `python -m configs.results.mrkd.round2.make_table sc12 [--effect 0.01]`
Writes `round2/tables_<data>.json` and the markdown between the README's
`<!-- kdjax.report:begin round2_<data> -->` markers (also printed).

Raises:
  SystemExit: no seed finished in both arms.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from configs.results.mrkd.make_table import collect
from configs.results.round2 import table_main
from kdjax.train.stats import holm, nadeau_bengio, paired_difference, runs_to_decide, verdict

HERE = pathlib.Path(__file__).resolve().parent
# n2/n1 (test / training clips of one split) of cross-validated data sets, as the Plan states:
# ESC-10, 80 test clips against the 320 of the 4 training folds less the validation carve
# (val_fraction 0.2 stratified over 10 classes of 32 clips holds out 6 per class: 260 remain).
NB_RATIO = {"esc10": 80 / 260}


def _pts(x: float) -> str:
    return f"{100 * x:+.2f}"


def _convergence(w: pathlib.Path, runs: list[str], peers: list[str]) -> dict:
    out = {"patience": 3}  # the loop's convergence_patience, or early stopping's patience
    for arm in ("alone", "joint"):
        conv, best, last = [], {}, {}
        for k in runs:
            r = json.loads((w / arm / k / "result.json").read_text())
            out["patience"] = int((r.get("early_stopping") or {}).get("patience", 3))
            m = r["models"]
            for p in peers:
                conv.append(bool(m[p].get("converged")))
                best.setdefault(p, []).append(int(m[p]["best_step"]))
                last.setdefault(p, []).append(int(m[p].get("last_step", -1)))
        out[arm] = dict(converged=sum(conv), total=len(conv), best_step=best, last_step=last)
    return out


def build(data: str, effect: float, root: pathlib.Path = HERE) -> tuple[str, dict]:
    """(markdown, numbers) of one data set's second-round table from `root/<data>` (see the
    module docstring)."""
    w = pathlib.Path(root) / data
    d = collect(str(w))
    runs, peers = d["runs"], d["peers"]
    conv = _convergence(w, runs, peers)
    j = np.mean([d["rows"][p]["joint"] for p in peers], axis=0)
    a = np.mean([d["rows"][p]["alone"] for p in peers], axis=0)
    ratio = NB_RATIO.get(data, 0.0)
    plain = paired_difference(list(j), list(a))
    prim = nadeau_bengio(list(j), list(a), ratio) if ratio else plain
    n_conv = conv["alone"]["converged"] + conv["joint"]["converged"]
    n_tot = conv["alone"]["total"] + conv["joint"]["total"]
    converged = n_conv > n_tot / 2
    v = verdict(prim["ci95_low"], prim["ci95_high"], effect, "greater", converged=converged)
    more = None
    if v == "inconclusive" and len(runs) > 1:
        more = runs_to_decide(prim["std"], effect, mean=prim["mean"], test_train_ratio=ratio)
    sec = {p: (nadeau_bengio(d["rows"][p]["joint"], d["rows"][p]["alone"], ratio) if ratio
               else d["rows"][p]["paired"]) for p in peers}
    ps = [sec[p]["p_value"] for p in peers]
    adj = holm(ps)
    lines = [
        f"### {data}, second round: test accuracy (%), seeds {', '.join(runs)} (n = {len(runs)})", "",
        f"Steps (ceiling) per run: {d['steps']}; summed training time (s): alone "
        f"{d['train_time_s']['alone']:.0f}, joint {d['train_time_s']['joint']:.0f}.", "",
        "**Primary: peer-average gain** (mean over the peers of joint - alone, points):", "",
    ]
    if ratio:
        lines += [f"Interval: Nadeau-Bengio corrected (test/train {ratio:.4f}), which decides the "
                  f"verdict; the plain t interval, [{_pts(plain['ci95_low'])}, "
                  f"{_pts(plain['ci95_high'])}], assumes independent runs, which cross-validation "
                  "folds are not.", ""]
    lines += [
        "| n | mean | 95% CI | half-width | smallest effect | verdict |", "|---|---|---|---|---|---|",
        f"| {prim['n']} | {_pts(prim['mean'])} | [{_pts(prim['ci95_low'])}, {_pts(prim['ci95_high'])}] | "
        f"{100 * prim['half_width']:.2f} | +{100 * effect:.1f} | **{v}** |", "",
    ]
    if more is not None:
        lines += [f"Inconclusive: about {more} paired seeds would decide it if the paired SD "
                  f"({100 * prim['std']:.2f} points) and mean stay as observed.", ""]
    elif v == "inconclusive" and ratio:
        lines += [f"Inconclusive: at the observed paired SD ({100 * prim['std']:.2f} points) no number "
                  "of cross-validation runs would decide it (the corrected interval's half-width "
                  f"cannot fall below 1.96 x SD x sqrt({ratio:.4f}) = "
                  f"{100 * 1.96 * prim['std'] * ratio ** 0.5:.2f} points).", ""]
    elif v == "inconclusive":
        lines += ["Inconclusive.", ""]
    lines += [f"**Secondary: each peer** (Holm over the peers{'; corrected intervals' if ratio else ''}):", "",
              "| peer | alone | joint | joint - alone [95% CI] | p | Holm p | best steps alone / joint |",
              "|---|---|---|---|---|---|---|"]
    for p, padj in zip(peers, adj):
        r = d["rows"][p]
        q = sec[p]
        lines.append(
            f"| {p} | {100 * np.mean(r['alone']):.2f} +- {100 * np.std(r['alone'], ddof=1):.2f} | "
            f"{100 * np.mean(r['joint']):.2f} +- {100 * np.std(r['joint'], ddof=1):.2f} | "
            f"{_pts(q['mean'])} [{_pts(q['ci95_low'])}, {_pts(q['ci95_high'])}] | {q['p_value']:.3f} | "
            f"{padj:.3f} | {conv['alone']['best_step'][p]} / {conv['joint']['best_step'][p]} |")
    e = d["ensemble_paired"]
    lines += [
        "", f"Reference (descriptive): logit-average ensemble of the {len(peers)} peers, alone "
        f"{100 * np.mean(d['ensemble_alone']):.2f}%, joint {100 * np.mean(d['ensemble_joint']):.2f}% "
        f"(joint - alone {_pts(e['mean'])} [{_pts(e['ci95_low'])}, {_pts(e['ci95_high'])}]).",
        f"Convergence (peer-runs with the best validation step >= {conv['patience']} validations "
        "before the last): "
        f"alone {conv['alone']['converged']}/{conv['alone']['total']}, joint "
        f"{conv['joint']['converged']}/{conv['joint']['total']}"
        + ("." if converged else "; most did not converge, so the table is under-trained and "
           "cannot say refuted."),
        "Per seed (%): " + "; ".join(
            f"{p}: alone [{', '.join(f'{100 * x:.1f}' for x in d['rows'][p]['alone'])}], joint "
            f"[{', '.join(f'{100 * x:.1f}' for x in d['rows'][p]['joint'])}]" for p in peers) + ".",
    ]
    if d["only_one_arm"]:
        lines.append(f"Finished in one arm only (not paired): {d['only_one_arm']}.")
    nums = dict(data=data, runs=runs, peers=peers, primary=prim, verdict=v, runs_to_decide=more,
                effect=effect, secondary={p: dict(sec[p], holm_p=padj)
                                          for p, padj in zip(peers, adj)},
                convergence=conv, ensemble=dict(alone=d["ensemble_alone"], joint=d["ensemble_joint"]),
                per_run={p: dict(alone=d["rows"][p]["alone"], joint=d["rows"][p]["joint"]) for p in peers})
    return "\n".join(lines) + "\n", nums


def main(argv=None) -> None:
    table_main(__doc__, HERE, build, effect=0.01, argv=argv)


if __name__ == "__main__":
    main()
