"""Pictures: the teacher's rolled-out attention over time vs a KD student's training-only head.

For each student model, one PNG with a few test clips (columns): top, the clip's log-mel
spectrogram with the keyword's true position shaded (`noisy_speech_commands` placement);
bottom, over the student's frames, the teacher's target (the cached rollout class-token row of
the `rollout` stage, linearly interpolated to the student's T, exactly the loss's target) and
the student head's softmax weights, for the KD arm `<model>_l<lambda>` (seed 0) and, for
reference, the rollout of the same clip.

Run (after the recipe's runs): python configs/results/temporal_kd/plot_attention.py \
    --workdir workdirs/temporal_kd_sc2 --arg variant=local,data=sc2 --lam 0.5
Writes attention_<data>_<model>.png next to this file.
"""

from __future__ import annotations

import argparse
import copy
import os
import pathlib

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from configs import temporal_kd  # noqa: E402
from kdjax.data import get_source  # noqa: E402
from kdjax.losses import time_alignment_matrix  # noqa: E402
from kdjax.train.checkpoint import load_last_variables  # noqa: E402
from kdjax.train.forward import forward  # noqa: E402
from kdjax.train.program import build_program  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--arg", default="variant=local,data=sc2")
    ap.add_argument("--lam", type=float, default=0.5)
    ap.add_argument("--seed_dir", default="seed0")
    ap.add_argument("--clips", default="", help="test clip indices (default: 4 keyword clips, evenly spaced)")
    a = ap.parse_args()
    cfg = temporal_kd.get_config(a.arg)
    data = cfg.stages.teacher.data
    src = get_source(data.name, data.test_split, **dict(data.kw))
    names = src.class_names
    if a.clips:
        idx = [int(i) for i in a.clips.split(",")]
    else:  # clips of the 10 keywords (not _silence_ / _unknown_), evenly spaced over the split
        words = [i for i, r in enumerate(src.records) if not names[int(np.argmax(r.labels))].startswith("_")]
        idx = [words[k] for k in np.linspace(0, len(words) - 1, 4).astype(int)]
    s = int(round(data.clip_seconds * src.sample_rate))
    audio = np.stack([np.asarray(src[i]["audio"], np.float32)[:s] for i in idx])
    target_all = np.load(os.path.join(a.workdir, "rollout", "arrays", data.test_split, "rollout.npy"))
    tag = a.arg.split("data=")[-1].split(",")[0]
    for model in temporal_kd.STUDENTS:
        stage = f"{model}_{temporal_kd.lam_code(a.lam)}"
        run = os.path.join(a.workdir, stage, a.seed_dir)
        if not os.path.isdir(os.path.join(run, "ckpt")):
            print(f"skip {stage}: no {run}/ckpt")
            continue
        c = copy.deepcopy(cfg.stages[stage])
        p = build_program(c, src.num_classes, src.sample_rate)
        variables = {n: load_last_variables(run, n) for n in p.models}  # one step: student + head
        ns, _ = jax.jit(lambda v, b, p=p: forward(p, v, b, jax.random.key(0), train=False))(
            variables, {"audio": audio})
        w = np.asarray(ns["head"]["feats"]["weights"])  # [B, T]
        mel = np.asarray(ns["features"]["student"])  # [B, T_in, F]
        t = w.shape[1]
        align = np.asarray(time_alignment_matrix(target_all.shape[1], t, "interpolate"))
        tgt = target_all[idx] @ align.T
        tgt = tgt / tgt.sum(-1, keepdims=True)
        pred = np.asarray(ns["student"]["logits"]).argmax(-1)
        fig, axes = plt.subplots(2, len(idx), figsize=(3.2 * len(idx), 4.6), sharex="col")
        for j, i in enumerate(idx):
            start, _ = src.placement(i)
            kw_len = int(src.records[i].meta.get("num_samples", src.sample_rate))
            sec = np.array([start, start + kw_len]) / src.sample_rate
            dur = s / src.sample_rate
            ax = axes[0, j]
            ax.imshow(mel[j].T, origin="lower", aspect="auto", extent=[0, dur, 0, mel.shape[2]], cmap="magma")
            ax.axvspan(*sec, color="cyan", alpha=0.18)
            truth = names[int(np.argmax(src.records[i].labels))]
            ax.set_title(f"test clip {i}: '{truth}' (pred '{names[pred[j]]}')", fontsize=8)
            ax.set_ylabel("mel bin" if j == 0 else "")
            ax = axes[1, j]
            tt = (np.arange(t) + 0.5) * dur / t
            ax.plot(tt, tgt[j], label="teacher rollout (target)", color="k")
            ax.plot(tt, w[j], label=f"student head ({model}, lambda={a.lam})", color="C3")
            ax.axvspan(*sec, color="cyan", alpha=0.18, label="keyword position")
            ax.set_xlabel("time (s)")
            if j == 0:
                ax.set_ylabel("attention weight")
                ax.legend(fontsize=6, loc="upper left")
        fig.suptitle(f"Temporal KD, noisy Speech Commands {tag}: {model} (run {stage}/{a.seed_dir})", fontsize=9)
        fig.tight_layout()
        out = HERE / f"attention_{tag}_{model}.png"
        fig.savefig(out, dpi=90)
        plt.close(fig)
        print("wrote", out)


if __name__ == "__main__":
    main()
