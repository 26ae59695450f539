"""Builds the IUSP results tables from the run folders (no number is typed by hand).

Usage (from the repository root):
  python -m configs.results.iusp.make_table esc10_mix=configs/results/iusp/raw/iusp_esc10_mix \
      sc_mix=configs/results/iusp/raw/iusp_sc_mix [--readme configs/results/iusp/README.md] \
      [--json configs/results/iusp/tables.json] [--boot 1000]

Reads `<workdir>/<arm>_<size>/seed<k>/{result.json, logits_test.npz}` and `<workdir>/teacher/`
(configs/iusp.py stages). For every dataset and student size:
  * micro-AUPRC (DCASE 2019 Task 5, of sigmoid(logits); `result.json`'s selection metric,
    recomputed from the saved test logits and checked equal) and mAP (macro AP, from the
    logits), mean +- std (ddof=1) over seeds;
  * gain over BCE: mean of the per-seed paired differences with its 95% Student-t interval
    (`kdjax.train.stats.paired_difference`);
  * "IUSP gain / SP gain" = mean_k(iusp_k - bce_k) / mean_k(sp_k - bce_k) with a 95%
    percentile interval from a two-level paired bootstrap: each replicate resamples the seeds
    (the same seed indices for all arms) and the test clips (the same clips for all arms), then
    recomputes every micro-AUPRC. Replicates whose SP gain is <= 0 have no meaningful ratio;
    their share is reported (`P(SP gain <= 0)`).
The paper's claim: IUSP's gain is 27.1% to 122.4% larger than SP's, i.e. ratio in
[1.271, 2.224]. Verdict: "holds" when the measured ratio >= 1.271, both gains > 0 and the
paired IUSP - SP interval excludes 0 (IUSP better); "direction only" when the ratio > 1 but the
IUSP - SP difference is not significant; "inconclusive" otherwise (round 1 printed "does not
hold", stronger than its intervals, every one of which held 0: corrected in issue #25).
With `--readme` (default: the README next to this file; '' skips it), the tables replace the
README's `<!-- kdjax.report:begin tables -->` block, and each data set's kdjax.report block
(the config's claim, `configs/iusp.py:variant=local,data=<name>,<configs.iusp.ROUND1_ARGS>`, round 1's settings: IUSP minus SP per
student size, the small student primary; pictures under `report/<name>/`) its `<name>` block.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import re

import numpy as np

from configs.iusp import ROUND1_ARGS
from kdjax.report import load_config, readme_block, replace_block
from kdjax.train import metrics
from kdjax.train.stats import format_interval, mean_std, paired_difference

HERE = os.path.dirname(os.path.abspath(__file__))

ARMS = ("bce", "kd", "sp", "iusp")
SIZES = ("small", "medium", "large")
CLAIM = (1.271, 2.224)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def _runs(workdir: str, stage: str) -> dict[int, dict]:
    """seed index -> {result, probs [N, C], labels [N, C], auprc, map} of a stage's finished runs."""
    out = {}
    for d in sorted(glob.glob(os.path.join(workdir, stage, "seed*"))):
        res, npz = os.path.join(d, "result.json"), os.path.join(d, "logits_test.npz")
        if not (os.path.exists(res) and os.path.exists(npz)):
            continue
        with open(res) as f:
            r = json.load(f)
        z = np.load(npz)
        p = _sigmoid(z["student"].astype(np.float64))
        y = z["labels"]
        auprc = metrics.micro_auprc(p, y)
        test = r["models"]["student"]["test"]  # runs before the loop's sigmoid fix: micro_auprc_sigmoid
        logged = test["micro_auprc"] if "micro_auprc" in test else test["micro_auprc_sigmoid"]
        if not math.isclose(auprc, logged, rel_tol=1e-6, abs_tol=1e-9):
            raise ValueError(f"{d}: recomputed micro-AUPRC {auprc} != result.json {logged}")
        out[int(re.sub(r"\D", "", os.path.basename(d)))] = dict(
            result=r, probs=p, labels=y, auprc=auprc, map=metrics.mean_average_precision(p, y))
    return out


def _ms(v):
    return mean_std(v)


def _ci(d):
    return format_interval(d)


def _bootstrap_ratio(runs: dict[str, dict[int, dict]], seeds: list[int], n_boot: int, rng) -> dict:
    """Two-level paired bootstrap (seeds, then test clips) of mean IUSP gain / mean SP gain."""
    n = runs["bce"][seeds[0]]["labels"].shape[0]
    ratios, sp_nonpos = [], 0
    for _ in range(n_boot):
        ks = rng.choice(seeds, len(seeds), replace=True)
        idx = rng.integers(0, n, n)
        val = {a: np.mean([metrics.micro_auprc(runs[a][k]["probs"][idx], runs[a][k]["labels"][idx]) for k in ks])
               for a in ("bce", "sp", "iusp")}
        g_sp, g_iusp = val["sp"] - val["bce"], val["iusp"] - val["bce"]
        if g_sp <= 0:
            sp_nonpos += 1
            continue
        ratios.append(g_iusp / g_sp)
    out = {"n_boot": n_boot, "p_sp_gain_nonpositive": sp_nonpos / n_boot}
    if ratios:
        out["ci95_low"], out["ci95_high"] = (float(x) for x in np.percentile(ratios, [2.5, 97.5]))
        out["p_ratio_in_claim"] = float(np.mean([(CLAIM[0] <= r <= CLAIM[1]) for r in ratios]))
    return out


def dataset_table(name: str, workdir: str, n_boot: int, seed: int = 0) -> tuple[str, dict]:
    rng = np.random.default_rng(seed)
    lines = [f"### {name} (`{workdir}`)", ""]
    data: dict = {"dataset": name, "workdir": workdir, "sizes": {}}
    tr = os.path.join(workdir, "teacher", "result.json")
    if os.path.exists(tr):
        with open(tr) as f:
            r = json.load(f)
        z = np.load(os.path.join(workdir, "teacher", "logits_test.npz"))
        p = _sigmoid(z["teacher"].astype(np.float64))
        t = dict(params=r["params"]["teacher"], auprc=metrics.micro_auprc(p, z["labels"]),
                 map=metrics.mean_average_precision(p, z["labels"]), train_time_s=r["train_time_s"],
                 steps=r["steps"], n_test=int(z["labels"].shape[0]))
        data["teacher"] = t
        lines += [f"Teacher: {t['params']:,} params, {t['steps']} steps, test micro-AUPRC {t['auprc']:.4f}, "
                  f"mAP {t['map']:.4f} ({t['n_test']} test clips).", ""]
    total_s = 0.0
    for size in SIZES:
        runs = {a: _runs(workdir, f"{a}_{size}") for a in ARMS}
        if not runs["bce"]:
            lines += [f"**{size}**: not run (cut for time).", ""]
            continue
        params = next(iter(runs["bce"].values()))["result"]["params"]["student"]
        lines += [f"**{size} student** ({params:,} params)", "",
                  "| arm | seeds | micro-AUPRC | mAP | micro-AUPRC gain over BCE (paired, 95% t) | mAP gain over BCE |",
                  "|---|---|---|---|---|---|"]
        row_data = {}
        for a in ARMS:
            if not runs[a]:
                lines.append(f"| {a} | 0 | not run | | | |")
                continue
            ks = sorted(runs[a])
            au, mp = [runs[a][k]["auprc"] for k in ks], [runs[a][k]["map"] for k in ks]
            total_s += sum(runs[a][k]["result"]["train_time_s"] + runs[a][k]["result"]["setup_time_s"] for k in ks)
            rd = {"seeds": ks, "micro_auprc": au, "map": mp}
            gain, gain_map = "", ""
            common = sorted(set(ks) & set(runs["bce"]))
            if a != "bce" and len(common) > 1:
                rd["gain"] = paired_difference([runs[a][k]["auprc"] for k in common],
                                               [runs["bce"][k]["auprc"] for k in common])
                rd["gain_map"] = paired_difference([runs[a][k]["map"] for k in common],
                                                   [runs["bce"][k]["map"] for k in common])
                gain, gain_map = _ci(rd["gain"]), _ci(rd["gain_map"])
            row_data[a] = rd
            lines.append(f"| {a} | {len(ks)} | {_ms(au)} | {_ms(mp)} | {gain} | {gain_map} |")
        lines.append("")
        common = sorted(set.intersection(*(set(runs[a]) for a in ("bce", "sp", "iusp"))))
        if len(common) > 1:
            g_sp = float(np.mean([runs["sp"][k]["auprc"] - runs["bce"][k]["auprc"] for k in common]))
            g_iu = float(np.mean([runs["iusp"][k]["auprc"] - runs["bce"][k]["auprc"] for k in common]))
            diff = paired_difference([runs["iusp"][k]["auprc"] for k in common],
                                     [runs["sp"][k]["auprc"] for k in common])
            ratio = g_iu / g_sp if g_sp != 0 else math.inf
            boot = _bootstrap_ratio(runs, common, n_boot, rng)
            if ratio >= CLAIM[0] and g_sp > 0 and g_iu > 0 and diff["ci95_low"] > 0:
                verdict = "holds"
            elif g_sp > 0 and ratio > 1 or g_sp <= 0 < g_iu:
                verdict = "direction only (IUSP - SP not significant)" if diff["ci95_low"] <= 0 else "holds in direction"
            elif g_sp <= 0 and g_iu <= 0:
                verdict = "inconclusive (neither SP nor IUSP gains over BCE)"
            else:
                verdict = "inconclusive"
            ci = (f"[{boot['ci95_low']:.2f}, {boot['ci95_high']:.2f}]" if "ci95_low" in boot else "undefined")
            lines += [
                f"IUSP gain / SP gain (micro-AUPRC, seeds {common}): "
                + (f"**{ratio:.2f}** " if g_sp > 0 else f"**undefined** (SP gain <= 0; raw quotient {ratio:.2f}) ")
                +
                f"(SP gain {g_sp:+.4f}, IUSP gain {g_iu:+.4f}); 95% two-level bootstrap interval {ci} "
                f"over {boot['n_boot']} replicates, P(SP gain <= 0) = {boot['p_sp_gain_nonpositive']:.2f}"
                + (f", P(ratio in paper's [1.271, 2.224]) = {boot['p_ratio_in_claim']:.2f}" if "p_ratio_in_claim" in boot else "")
                + ".",
                f"IUSP - SP (paired, 95% t): {_ci(diff)}. Paper: ratio 1.271-2.224. Verdict: **{verdict}**.", ""]
            row_data["ratio"] = dict(value=ratio, sp_gain=g_sp, iusp_gain=g_iu, bootstrap=boot,
                                     iusp_minus_sp=diff, verdict=verdict)
        data["sizes"][size] = row_data
    data["student_run_time_s"] = total_s
    lines += [f"Student runs' time (train + setup, summed): {total_s / 60:.1f} min.", ""]
    log = workdir.rstrip("/") + ".log"
    if os.path.exists(log):  # the launch log: start/end time stamps and load averages
        with open(log) as f:
            marks = [x.strip() for x in f if x.startswith(("start ", "end "))]
        stamps = [re.search(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)Z", m) for m in marks]
        if len(stamps) >= 2 and all(stamps):
            from datetime import datetime
            t0, t1 = (datetime.fromisoformat(x.group(1)) for x in (stamps[0], stamps[-1]))
            data["wall_time_s"] = (t1 - t0).total_seconds()
            lines += [f"Wall time of the whole command (launch log): {data['wall_time_s'] / 60:.1f} min "
                      f"(`{marks[0]}` ... `{marks[-1]}`).", ""]
        elif marks:
            lines += [f"Launch log: `{marks[0]}` (no end stamp: cut).", ""]
    return "\n".join(lines), data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("datasets", nargs="+", help="name=workdir")
    ap.add_argument("--readme", default=os.path.join(HERE, "README.md"))
    ap.add_argument("--json", default=os.path.join(HERE, "tables.json"))
    ap.add_argument("--boot", type=int, default=1000)
    args = ap.parse_args()
    texts, datas = [], []
    for item in args.datasets:
        name, _, wd = item.partition("=")
        if not os.path.isdir(os.path.join(wd, "teacher")):
            texts.append(f"### {name}\n\nnot run (no `{wd}/teacher`).\n")
            continue
        t, d = dataset_table(name, wd, args.boot)
        texts.append(t)
        datas.append(d)
    text = "\n".join(texts)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(datas, f, indent=1, default=float)
    if args.readme:
        with open(args.readme) as f:
            readme = f.read()
        with open(args.readme, "w") as f:
            f.write(replace_block(readme, "tables", text))
        for item in args.datasets:
            name, _, wd = item.partition("=")
            if os.path.isdir(os.path.join(wd, "teacher")):
                readme_block(args.readme, name, wd, os.path.join(HERE, "report", name), title=f"IUSP, {name}",
                             config=load_config(f"configs/iusp.py:variant=local,data={name},{ROUND1_ARGS}"))


if __name__ == "__main__":
    main()
