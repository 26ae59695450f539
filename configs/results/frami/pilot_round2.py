"""Summary JSON of the second-round pilot (issue #27; not a result): the stats_pool_net
teacher's accuracy and, per inversion arm, the teacher's accuracy on its own targets and the
objective's terms at every logged inversion step (read from the runs' result.json and
metrics.jsonl; nothing typed by hand).

  python configs/results/frami/pilot_round2.py --teacher <wd>/teacher \
      --arm warmup_cosine=<wd>/inv_di/seed0 --arm constant=<wd2>/inv_di/seed0 \
      --note "..." --out configs/results/frami/fsdd_pilot_round2.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess


def _json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def arm(run_dir: str) -> dict:
    """The inversion run's summary and its per-step trace (steps of batch 0 and later ones)."""
    res = _json(os.path.join(run_dir, "result.json"))["summary"]
    trace = []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            m = json.loads(line)
            trace.append({"step": m["step"], "target_accuracy": m.get("invert/target_accuracy"),
                          **{k.split("/")[-1]: v for k, v in m.items() if k.startswith("invert/loss")}})
    first_ok = next((t["step"] for t in trace if (t["target_accuracy"] or 0) >= res["accept_accuracy"]), None)
    return {"summary": res, "first_logged_step_at_or_above_accept": first_ok, "trace": trace}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--arm", action="append", default=[], help="name=run_dir of an inversion")
    ap.add_argument("--note", default="")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    t = _json(os.path.join(a.teacher, "result.json"))
    m = t["models"]["teacher"]
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((ln.split(":", 1)[1].strip() for ln in cpu.splitlines() if ln.startswith("Model name")), "")
    out = {
        "what": "FRAMI second-round pilot (not a result): FSDD only, one inversion batch per arm",
        "machine": {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version()},
        "note": a.note,
        "teacher": {"model": "stats_pool_net", "params": t["params"]["teacher"],
                    "validation_accuracy": m["validation"]["accuracy"], "test_accuracy": m["test"]["accuracy"],
                    "steps": t["steps"], "train_time_s": t["train_time_s"]},
        "arms": {k: arm(v) for k, v in (s.split("=", 1) for s in a.arm)},
    }
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps({k: {"accuracy": v["summary"]["teacher_accuracy_on_targets"],
                          "first_step_ok": v["first_logged_step_at_or_above_accept"],
                          "loss_last": v["summary"]["loss_last"], "time_s": v["summary"]["time_s"]}
                      for k, v in out["arms"].items()}, indent=1))


if __name__ == "__main__":
    main()
