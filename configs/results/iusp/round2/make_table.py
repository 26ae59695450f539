"""Second-round IUSP table (issue #25) from the committed per-run files; no number is typed.

Reads `configs/results/iusp/round2/<data>/<arm>_small/seed<k>/result.json` (+ metrics.jsonl;
written by `run_<data>.py`) and `selection_<data>.json`, and applies the README's Plan:
  primary    IUSP - SP (small student), test micro-AUPRC, paired 95% t interval over the seeds,
             verdict against the smallest effect of interest (`kdjax.train.stats.verdict`; a
             "refuted" needs most runs converged) and the seeds that would decide it;
  ratio      (IUSP - BCE) / (SP - BCE) with a paired percentile bootstrap interval over the seeds
             (`scipy.stats.bootstrap`, 10,000 resamples, fixed seed): reproduced when it lies above
             1, refuted when below 1.27 (the paper's smallest ratio), else inconclusive (also when
             SP's mean gain over BCE is <= 0); the same ratio over KD, descriptive;
  secondary  SP - BCE, IUSP - BCE, SP - KD, IUSP - KD with Holm-adjusted p-values;
  convergence per arm (`result.json` `models.student.converged`), best/last steps, and the
  relational term's share of the training loss (weight x term / total at the last logged step).

Usage (repository root): `python -m configs.results.iusp.round2.make_table sc_mix esc10_mix`
Writes `round2/tables_<data>.json` and the markdown between the README's
`<!-- kdjax.report:begin round2_<data> -->` markers (also printed).

Raises:
  SystemExit: no seed finished in every arm.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
from scipy import stats as sps

from configs.results.round2 import loss_share, table_main
from kdjax.train.stats import holm, paired_difference, runs_to_decide, verdict

HERE = pathlib.Path(__file__).resolve().parent
ARMS = ("bce", "kd", "sp", "iusp")
RATIO_LOW, RATIO_HIGH = 1.27, 2.22  # Chang et al. 2020: IUSP's gain 27.1-122.4% larger than SP's


def _runs(root: pathlib.Path) -> dict[str, dict[str, dict]]:
    """arm -> seed folder -> result.json's student entry (+ steps and the arm's loss weight)."""
    out = {}
    for arm in ARMS:
        d = root / f"{arm}_small"
        out[arm] = {p.name: json.loads((p / "result.json").read_text())
                    for p in sorted(d.glob("seed*")) if (p / "result.json").is_file()} if d.is_dir() else {}
    return out


def ratio_interval(ref, sp, iusp, seed: int = 0) -> tuple[float, float, float]:
    """(ratio of mean gains (iusp - ref) / (sp - ref), low, high) with a paired percentile
    bootstrap over the seeds (scipy.stats.bootstrap, 10,000 resamples); `ref` the BCE (or KD)
    arm's `[n]` scores. NaN interval when fewer than 3 seeds."""
    g_i, g_s = np.asarray(iusp) - np.asarray(ref), np.asarray(sp) - np.asarray(ref)
    r = float(g_i.mean() / g_s.mean()) if g_s.mean() != 0 else float("nan")
    if len(g_i) < 3:
        return r, float("nan"), float("nan")
    res = sps.bootstrap((g_i, g_s), lambda a, b, axis=-1: a.mean(axis) / b.mean(axis), paired=True,
                        vectorized=True, n_resamples=10_000, method="percentile",
                        rng=np.random.default_rng(seed))
    return r, float(res.confidence_interval.low), float(res.confidence_interval.high)


def build(data: str, effect: float, root: pathlib.Path = HERE) -> tuple[str, dict]:
    """(markdown, numbers) of one data set's table from `root/<data>` (module docstring)."""
    runs = _runs(pathlib.Path(root) / data)
    seeds = sorted(set.intersection(*(set(v) for v in runs.values())), key=lambda s: int(s[4:]))
    if not seeds:
        raise SystemExit(f"make_table: {root}/{data}: no seed finished in every arm "
                         f"({ {a: sorted(v) for a, v in runs.items()} })")
    test = {a: [runs[a][s]["models"]["student"]["test"]["micro_auprc"] for s in seeds] for a in ARMS}
    prim = paired_difference(test["iusp"], test["sp"])
    conv = {a: sum(bool(runs[a][s]["models"]["student"]["converged"]) for s in seeds) for a in ARMS}
    converged = sum(conv.values()) > len(ARMS) * len(seeds) / 2
    v = verdict(prim["ci95_low"], prim["ci95_high"], effect, "greater", converged=converged)
    more = runs_to_decide(prim["std"], effect, mean=prim["mean"]) if v == "inconclusive" and len(seeds) > 1 else None
    sec_names = [("sp", "bce"), ("iusp", "bce"), ("sp", "kd"), ("iusp", "kd")]
    sec = {f"{a} - {b}": paired_difference(test[a], test[b]) for a, b in sec_names}
    adj = dict(zip(sec, holm([d["p_value"] for d in sec.values()]), strict=True))
    r_bce = ratio_interval(test["bce"], test["sp"], test["iusp"])
    r_kd = ratio_interval(test["kd"], test["sp"], test["iusp"])
    sp_gain = float(np.mean(np.asarray(test["sp"]) - np.asarray(test["bce"])))
    if sp_gain <= 0 or np.isnan(r_bce[1]):
        rv = "inconclusive"
    elif r_bce[1] > 1:
        rv = "reproduced"
    elif r_bce[2] < RATIO_LOW and converged:
        rv = "refuted"
    else:
        rv = "inconclusive"
    cfg_file = pathlib.Path(root) / data / "config.json"
    cfg = json.loads(cfg_file.read_text()) if cfg_file.is_file() else {}
    # the arms' relational weights, from the stored config of the table's workdir
    w = {a: cfg.get("stages", {}).get(f"{a}_small", {}).get("losses", {}).get(a, {}).get("weight")
         for a in ("sp", "iusp")}
    shares = {a: [loss_share(pathlib.Path(root) / data / f"{a}_small" / s, a, float(w[a])) for s in seeds]
              for a in ("sp", "iusp") if w[a] is not None}

    def pm(x):
        return f"{np.mean(x):.4f} +- {np.std(x, ddof=1):.4f}" if len(x) > 1 else f"{np.mean(x):.4f}"

    def iv(d):
        return f"{d['mean']:+.4f} [{d['ci95_low']:+.4f}, {d['ci95_high']:+.4f}]"

    lines = [f"### {data}, second round, small student: test micro-AUPRC, seeds {seeds[0]}..{seeds[-1]} "
             f"(n = {len(seeds)})", "",
             "| arm | test micro-AUPRC | converged | best steps |", "|---|---|---|---|"]
    for a in ARMS:
        lines.append(f"| {a} | {pm(test[a])} | {conv[a]}/{len(seeds)} | "
                     f"{[runs[a][s]['models']['student']['best_step'] for s in seeds]} |")
    lines += ["", "**Primary: IUSP - SP**", "", "| n | difference [95% CI] | half-width | smallest effect | verdict |",
              "|---|---|---|---|---|",
              f"| {prim['n']} | {iv(prim)} | {prim['half_width']:.4f} | +{effect} | **{v}** |", ""]
    if more is not None:
        lines += [f"Inconclusive: about {more} paired seeds would decide it if the paired SD "
                  f"({prim['std']:.4f}) and mean stay as observed.", ""]
    lines += [f"**Ratio claim** (IUSP - BCE) / (SP - BCE), paper {RATIO_LOW}-{RATIO_HIGH}: "
              f"{r_bce[0]:.2f} [{r_bce[1]:.2f}, {r_bce[2]:.2f}] (paired bootstrap) -> **{rv}**"
              + (" (SP's mean gain over BCE is <= 0: the ratio is undefined)" if sp_gain <= 0 else "")
              + f"; over KD (descriptive): {r_kd[0]:.2f} [{r_kd[1]:.2f}, {r_kd[2]:.2f}].", "",
              "**Secondary** (Holm over 4):", "", "| comparison | difference [95% CI] | p | Holm p |",
              "|---|---|---|---|"]
    for k, d in sec.items():
        lines.append(f"| {k} | {iv(d)} | {d['p_value']:.3f} | {adj[k]:.3f} |")
    if shares:
        lines += ["", "Relational term's share of the training loss at the last logged step: " + "; ".join(
            f"{a} (w = {w[a]}) {np.mean(v):.3f} (range {min(v):.3f}-{max(v):.3f})" for a, v in shares.items()) + "."]
    if not converged:
        lines.append("Most runs did not converge: the table is under-trained and cannot say refuted.")
    nums = dict(data=data, seeds=seeds, test=test, primary=prim, verdict=v, runs_to_decide=more,
                ratio_over_bce=r_bce, ratio_verdict=rv, ratio_over_kd=r_kd,
                secondary={k: dict(d, holm_p=adj[k]) for k, d in sec.items()}, convergence=conv,
                shares=shares, effect=effect)
    return "\n".join(lines) + "\n", nums


def main(argv=None) -> None:
    table_main(__doc__, HERE, build, effect=0.0057, argv=argv)


if __name__ == "__main__":
    main()
