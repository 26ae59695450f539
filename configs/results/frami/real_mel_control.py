"""Control for the FRAMI table: is the synthetic-data path itself sound, or are the inverted samples?

Every data-free arm of configs/frami.py is near chance on FSDD. Two things could cause that:
the inverted spectrograms (their content), or the path a synthetic set takes (shards of
`features/mel` read by the `synthetic` source, the student's front-end bypassed in training and
run on real audio at test time, BatchNorm statistics from the shards). This script separates
them by feeding REAL data through both paths, with the `di` arm's student, KD loss, steps and
seeds, and as many examples as the synthetic sets have (`--n`, default syn_batches x syn_batch):

  real_audio  the `di` student on `--n` real train clips (strided subset, `data.kw.max_examples`),
              read as audio through the front-end (like the `real` arm, but the same size as
              the synthetic sets)
  real_mel    the same `--n` clips turned into teacher-front-end log-mels once (start crop) and
              written as synthetic shards (`shard_<k>.npz`: `features/mel`, one-hot `labels`,
              `teacher_logits`, `meta.json`: the invert stage's format), read back by the
              `synthetic` source exactly as `di` reads inv_di's set

If real_mel is close to real_audio, the path is sound and the failure is the inverted samples'.
Runs the recipe's `teacher` stage first when the workdir has none. Stage folders:
`<workdir>/{teacher, real_mel_shards, real_audio/seed<k>, real_mel/seed<k>}`; summary in
`<workdir>/control_summary.json` (also printed).

Usage:
  python configs/results/frami/real_mel_control.py --workdir workdirs/frami_fsdd_control \
      --arg variant=local,data=fsdd

Raises:
  SystemExit: the data has fewer train clips than `--n`.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))


def write_real_mel_shards(cfg, out_dir: str, n: int, shard_size: int) -> dict:
    """Writes `n` real train clips' front-end features as synthetic shards (start crop, no augmentation).

    Args:
      cfg: the recipe's `di` stage config (its data block, front-ends and teacher).
      out_dir: the shard folder (`shard_<k>.npz` + `meta.json`, as `kdjax.train.invert` writes).
      n: clips (the strided `max_examples` subset of the train split, as `real_audio` reads).
      shard_size: clips per shard.

    Returns:
      `{"clips", "shape", "class_counts", "teacher_accuracy"}`.
    """
    import jax
    import jax.numpy as jnp

    from kdjax.data import pipeline
    from kdjax.train.checkpoint import load_best_variables
    from kdjax.train.forward import forward
    from kdjax.train.program import build_program
    from kdjax.train.setup import data_source

    d = copy.deepcopy(cfg.data)
    with d.unlocked():
        if "train_source" in d:
            del d["train_source"]
        d.kw.max_examples = n
    src = data_source(d, "train")
    if len(src) < n:
        raise SystemExit(f"real_mel_control: the train split has {len(src)} clips, fewer than --n={n}")
    clip = int(round(float(d.clip_seconds) * src.sample_rate))
    prog = build_program(cfg, src.num_classes, src.sample_rate)
    t = next(iter(cfg.teachers))
    teachers = {t: load_best_variables(cfg.teachers[t].checkpoint, cfg.teachers[t].checkpoint_model)}
    crop = pipeline._crop(clip, "start")

    frozen = tuple(x for x in prog.nodes if not x.trainable)  # the teacher only (no student variables)

    @jax.jit
    def feats_and_logits(audio, teachers):
        ns, _ = forward(prog, teachers, {"audio": audio, "mask": jnp.ones(audio.shape[0])}, jax.random.key(0),
                        train=False, nodes=frozen)
        return ns["features"]["mel"], ns["teacher"][t]["logits"]

    os.makedirs(out_dir, exist_ok=True)
    counts, correct, shape = np.zeros(src.num_classes, int), 0, None
    for k, start in enumerate(range(0, n, shard_size)):
        exs = [crop(src[i], np.random.default_rng(0)) for i in range(start, min(start + shard_size, n))]
        audio = np.stack([np.asarray(e["audio"], np.float32) for e in exs])
        labels = np.stack([np.asarray(e["labels"], np.float32) for e in exs])
        mel, logits = jax.device_get(feats_and_logits(jnp.asarray(audio), teachers))
        shape = list(mel.shape[1:])
        counts += labels.astype(int).sum(0)
        correct += int((logits.argmax(-1) == labels.argmax(-1)).sum())
        np.savez(os.path.join(out_dir, f"shard_{k:05d}.npz"), **{"features/mel": np.asarray(mel, np.float32),
                                                                  "labels": labels,
                                                                  "teacher_logits": np.asarray(logits, np.float32)})
    meta = {"sample_rate": src.sample_rate, "class_names": list(src.class_names), "feature_key": "mel",
            "multi_label": False, "shape": [shard_size, *shape], "made_by": "configs/results/frami/real_mel_control.py"}
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return {"clips": n, "shape": shape, "class_counts": counts.tolist(), "teacher_accuracy": correct / n}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--arg", default="variant=local,data=fsdd")
    ap.add_argument("--n", type=int, default=0, help="clips (0: syn_batches x syn_batch of the recipe)")
    a = ap.parse_args()

    from configs import frami
    from kdjax.train.stages import run_stages

    wd = os.path.abspath(a.workdir)
    cfg = frami.get_config(a.arg + ",stage=teacher")
    inv = cfg.stages.inv_di.invert
    n = a.n or int(inv.num_batches) * int(inv.batch_size)
    run_stages(cfg, wd)  # the teacher (skipped when its result.json exists)

    di = copy.deepcopy(cfg.stages.di)
    with di.unlocked():
        di.teachers.t.checkpoint = os.path.join(wd, "teacher")
        di.baseline = ""
    shards = os.path.join(wd, "real_mel_shards")
    info_path = os.path.join(shards, "info.json")
    if os.path.exists(info_path):  # shards of an earlier run
        with open(info_path) as f:
            info = json.load(f)
    else:
        info = write_real_mel_shards(di, shards, n, int(inv.batch_size))
        with open(info_path, "w") as f:
            json.dump(info, f, indent=1)
    print(f"real-mel shards: {info}")

    real_audio = copy.deepcopy(di)
    with real_audio.unlocked():
        del real_audio.data["train_source"]
        real_audio.data.kw.max_examples = n
    real_mel = copy.deepcopy(di)
    with real_mel.unlocked():
        real_mel.data.train_source.kw.root = shards
    ctl = copy.deepcopy(cfg)
    with ctl.unlocked():
        ctl.stages = {"teacher": cfg.stages.teacher, "real_audio": real_audio, "real_mel": real_mel}
        ctl.stages.real_mel.baseline = "real_audio"
        ctl.run = "real_audio,real_mel"
    s = run_stages(ctl, wd)
    out = {"arg": a.arg, "n": n, "shards": info, "summary": s}
    with open(os.path.join(wd, "control_summary.json"), "w") as f:
        json.dump(out, f, indent=1)
    for name in ("real_audio", "real_mel"):
        st = s["stages"].get(name, {})
        print(name, st.get("test_mean"), st.get("test_std"), [r["test"] for r in st.get("runs", [])])
    print("real_mel - real_audio:", s["stages"].get("real_mel", {}).get("paired_over_real_audio"))


if __name__ == "__main__":
    main()
