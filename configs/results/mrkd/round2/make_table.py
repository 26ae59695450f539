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
from kdjax.train.stats import holm, paired_difference, runs_to_decide, verdict

HERE = pathlib.Path(__file__).resolve().parent


def _pts(x: float) -> str:
    return f"{100 * x:+.2f}"


def _convergence(w: pathlib.Path, runs: list[str], peers: list[str]) -> dict:
    out = {}
    for arm in ("alone", "joint"):
        conv, best, last = [], {}, {}
        for k in runs:
            m = json.loads((w / arm / k / "result.json").read_text())["models"]
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
    prim = paired_difference(list(j), list(a))
    n_conv = conv["alone"]["converged"] + conv["joint"]["converged"]
    n_tot = conv["alone"]["total"] + conv["joint"]["total"]
    converged = n_conv > n_tot / 2
    v = verdict(prim["ci95_low"], prim["ci95_high"], effect, "greater", converged=converged)
    more = None
    if v == "inconclusive" and len(runs) > 1:
        more = runs_to_decide(prim["std"], effect, mean=prim["mean"])
    ps = [d["rows"][p]["paired"]["p_value"] for p in peers]
    adj = holm(ps)
    lines = [
        f"### {data}, second round: test accuracy (%), seeds {', '.join(runs)} (n = {len(runs)})", "",
        f"Steps (ceiling) per run: {d['steps']}; summed training time (s): alone "
        f"{d['train_time_s']['alone']:.0f}, joint {d['train_time_s']['joint']:.0f}.", "",
        "**Primary: peer-average gain** (mean over the peers of joint - alone, points):", "",
        "| n | mean | 95% CI | half-width | smallest effect | verdict |", "|---|---|---|---|---|---|",
        f"| {prim['n']} | {_pts(prim['mean'])} | [{_pts(prim['ci95_low'])}, {_pts(prim['ci95_high'])}] | "
        f"{100 * prim['half_width']:.2f} | +{100 * effect:.1f} | **{v}** |", "",
    ]
    if more is not None:
        lines += [f"Inconclusive: about {more} paired seeds would decide it if the paired SD "
                  f"({100 * prim['std']:.2f} points) and mean stay as observed.", ""]
    elif v == "inconclusive":
        lines += ["Inconclusive.", ""]
    lines += ["**Secondary: each peer** (Holm over the peers):", "",
              "| peer | alone | joint | joint - alone [95% CI] | p | Holm p | best steps alone / joint |",
              "|---|---|---|---|---|---|---|"]
    for p, padj in zip(peers, adj):
        r = d["rows"][p]
        q = r["paired"]
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
        f"Convergence (peer-runs with the best validation step >= 3 validations before the last): "
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
                effect=effect, secondary={p: dict(d["rows"][p]["paired"], holm_p=padj)
                                          for p, padj in zip(peers, adj)},
                convergence=conv, ensemble=dict(alone=d["ensemble_alone"], joint=d["ensemble_joint"]),
                per_run={p: dict(alone=d["rows"][p]["alone"], joint=d["rows"][p]["joint"]) for p in peers})
    return "\n".join(lines) + "\n", nums


def main(argv=None) -> None:
    table_main(__doc__, HERE, build, effect=0.01, argv=argv)


if __name__ == "__main__":
    main()
