"""Pilot selection table (validation only) from the committed pilot summaries in this folder.

Run: python configs/results/fsdd/pilot/val.py  (prints validation.txt)
"""
import glob
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
for p in sorted(glob.glob(os.path.join(HERE, "*_summary.json"))):
    s = json.load(open(p))["stages"]
    teacher_val = s["teacher"]["runs"][0]["validation"]
    ce = {r["seed"]: r["validation"] for r in s["student"]["runs"]}
    kd = {r["seed"]: r["validation"] for r in s["kd"]["runs"]}
    seeds = sorted(set(ce) & set(kd))
    d = np.array([kd[k] - ce[k] for k in seeds])
    name = os.path.basename(p).removesuffix("_summary.json")
    print(f"{name:10s} teacher val {teacher_val:.4f} CE val {np.mean(list(ce.values())):.4f} "
          f"KD val {np.mean(list(kd.values())):.4f} gain {d.mean():+.4f} sd {d.std(ddof=1):.4f} "
          f"per-seed {np.round(d, 4).tolist()} train s: CE {s['student']['train_time_s']:.0f} "
          f"KD {s['kd']['train_time_s']:.0f}")
