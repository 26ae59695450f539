"""Pictures: the teacher's rolled-out attention over time vs a KD student's training-only head.

A thin caller of kdjax.report's `attention_rollout` picture hook (kdjax/report/pictures.py),
which `python -m kdjax.report <workdir>` also draws into the report of a live Temporal KD
workdir. For each student model, one PNG with a few test clips (columns): top, the clip's
log-mel spectrogram with the keyword's true position shaded; bottom, over the student's frames,
the teacher's target (the cached rollout row of the `rollout` stage, linearly interpolated to
the student's T: exactly the loss's target) and the student head's softmax weights, for the KD
arm `<model>_l<100 lambda>` (first seed).

Run (after the recipe's runs; the results folder keeps no checkpoints, so it needs the workdir):
  python -m configs.results.temporal_kd.plot_attention --workdir workdirs/temporal_kd_sc2 \
      --arg variant=local,data=sc2 --lam 0.5
Writes attention_<data>_<model>.png next to this file (make_table.py shows them in the README).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib

from configs import temporal_kd
from kdjax.report import pictures
from kdjax.report.figures import _save

HERE = pathlib.Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--arg", default="variant=local,data=sc2")
    ap.add_argument("--lam", type=float, default=0.5)
    ap.add_argument(
        "--clips", default="", help="test clip indices (default: 4 keyword clips, evenly spaced)"
    )
    a = ap.parse_args()
    config = json.loads(temporal_kd.get_config(a.arg).to_json_best_effort())
    clips = [int(i) for i in a.clips.split(",")] if a.clips else 4
    tag = dict(kv.partition("=")[::2] for kv in a.arg.split(",")).get("data", "sc2")
    for model in temporal_kd.STUDENTS:
        arm = f"{model}_{temporal_kd.lam_code(a.lam)}"
        try:
            d = pictures.attention_rollout_data(a.workdir, config, arm, clips=clips)
        except pictures.Unavailable as e:
            print(f"skip {arm}: {e}")
            continue
        title = (
            f"Temporal KD, noisy Speech Commands {tag}: {model}, lambda={a.lam:g} "
            f"(run {os.path.relpath(d['run'], a.workdir)})"
        )
        print(
            "wrote",
            _save(pictures.attention_figure(d, title), str(HERE / f"attention_{tag}_{model}.png")),
        )


if __name__ == "__main__":
    main()
