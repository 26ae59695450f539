"""LSTM-P probe (issue #26): does gradient clipping or another learning rate make the `local`
LSTM-P student learn within the recipe's 300-step budget? Validation only (no test split).

    python -m configs.results.temporal_kd.lstm_p_probe.probe --workdir /tmp/lstm_p_probe \
        --out configs/results/temporal_kd/lstm_p_probe/probe.json

Each setting trains `lstm_p_l000` (CE only, no teacher needed) of
`configs/temporal_kd.py:variant=local,data=sc2` for 300 steps (two settings: 1200), seeds 0..
--seeds - 1, changing only the named fields (the learning-rate schedule and evaluation
interval follow `steps` as in the config); it writes every run's validation accuracy / loss at
each evaluation and its logged train loss and gradient norm (before clipping).
"""

from __future__ import annotations

import argparse
import json
import os
import time

from configs import temporal_kd
from kdjax.train.stage_list import stage_runs
from kdjax.train.stages import run_config

# name -> (learning rate, gradient clip by global norm (0: none), LSTM-P kw overrides, steps)
SETTINGS = {
    "committed_lr3e-3": (3e-3, 0.0, {}, 300),
    "clip1_lr3e-3": (3e-3, 1.0, {}, 300),
    "lr1e-3": (1e-3, 0.0, {}, 300),
    "clip1_lr1e-3": (1e-3, 1.0, {}, 300),
    "clip1_lr1e-2": (1e-2, 1.0, {}, 300),
    "mean_pooling_lr3e-3": (3e-3, 0.0, {"pooling": "mean"}, 300),
    "input_bn_lr3e-3": (3e-3, 0.0, {"input_norm": True}, 300),
    "input_bn_clip1_lr3e-3": (3e-3, 1.0, {"input_norm": True}, 300),
    "committed_lr3e-3_1200steps": (3e-3, 0.0, {}, 1200),
    "clip1_lr1e-2_1200steps": (1e-2, 1.0, {}, 1200),
}


def feature_stats(n: int = 32) -> dict[str, float]:
    """Mean / std / min / max (dB) of the student's log-mel features on the first `n` validation
    clips: the scale the LSTM-P input layer sees."""
    import jax
    import numpy as np

    from kdjax.data import get_source
    from kdjax.data.pipeline import eval_batches
    from kdjax.frontends import make_frontend

    c = temporal_kd.get_config("variant=local,data=sc2,target=live,stage=lstm_p_l000")
    c = c.stages.lstm_p_l000
    src = get_source(c.data.name, "validation", **dict(c.data.kw))
    clip = int(c.data.clip_seconds * src.sample_rate)
    b = next(eval_batches(src, clip_samples=clip, batch_size=n))
    x = np.asarray(jax.jit(make_frontend(dict(c.models.student.frontend)))(b["audio"]))
    return dict(clips=n, frames=x.shape[1], bins=x.shape[2], mean_db=float(x.mean()),
                std_db=float(x.std()), min_db=float(x.min()), max_db=float(x.max()))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--workdir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--settings", default=",".join(SETTINGS))
    p.add_argument("--seeds", type=int, default=1)
    a = p.parse_args()
    out = json.load(open(a.out)) if os.path.exists(a.out) else {}
    out["input_features"] = feature_stats()
    for name in a.settings.split(","):
        lr, clip, kw, steps = SETTINGS[name]
        cfg = temporal_kd.get_config(
            f"variant=local,data=sc2,target=live,stage=lstm_p_l000,seeds={a.seeds},steps={steps}"
        )
        c = cfg.stages.lstm_p_l000
        c.schedule.lr = lr
        c.optimizer.grad_clip = clip
        c.data.test_split = ""  # validation only
        c.models.student.kw.update(kw)
        wd = os.path.join(a.workdir, name)
        t0 = time.time()
        for _, _, run_wd, run_c in stage_runs(cfg, wd):  # no summary: it reads test metrics
            if not os.path.exists(os.path.join(run_wd, "result.json")):
                run_config(run_c, run_wd)
        runs = {}
        for k in range(a.seeds):
            rows = [json.loads(x) for x in open(os.path.join(wd, "lstm_p_l000", f"seed{k}",
                                                              "metrics.jsonl"))]
            val = [(r["step"], r["val/student/accuracy"], r["val/student/loss"])
                   for r in rows if "val/student/accuracy" in r]
            tr = [(r["step"], r["train/loss"], r["train/grad_norm"])
                  for r in rows if "train/loss" in r]
            runs[f"seed{k}"] = dict(val_step_accuracy_loss=val, train_step_loss_gradnorm=tr,
                                    best_val_accuracy=max(v[1] for v in val))
        out[name] = dict(lr=lr, grad_clip=clip, student_kw_overrides=kw, steps=c.num_steps,
                         batch_size=c.batch_size, runs=runs, wall_s=round(time.time() - t0, 1))
        json.dump(out, open(a.out, "w"), indent=1)
        print(name, {k: v["best_val_accuracy"] for k, v in runs.items()}, flush=True)


if __name__ == "__main__":
    main()
