"""Probe of inverted sets without training a student: how "real" does each synthetic set look?

For each synthetic set (a workdir's `<stage>/synthetic`), with the same teacher:
  transfer    accuracy of a model trained on REAL data (the recipe's `real` student, seed 0)
              on the synthetic set, against the targets the set was inverted for. Real train
              clips score ~0.94 here; a set the teacher alone "understands" (adversarial-like
              inputs) scores near chance (0.10).
  range       min..max of the spectrograms (dB); real clips: the -100 dB floor to ~+10 dB
  frame_std   mean over frames of the std across mel bins (dB): spectral roughness
  prior terms the inversion's last logged BN / TV / CE values (`metrics.jsonl`), next to the
              same terms of one batch of real train clips (as many as a synthetic batch,
              every k-th clip), computed with the inversion objective itself.
The probe reads real train data: it is a diagnostic for choosing the inversion's settings,
which a truly data-free user would not have (say so wherever its numbers are used).

Run:
  python configs/results/frami/prior_probe.py --real workdirs/frami_base \
      --sets "name@workdirs/p_x/inv_di,..." --out configs/results/frami/fsdd_prior_probe.json
Prints one markdown row per set (and the real-batch row) and writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from configs import frami
from kdjax.data.synthetic import source as synthetic_source
from kdjax.train import stages as stages_lib
from kdjax.train.checkpoint import load_best_variables
from kdjax.train.invert import inversion_objective
from kdjax.train.program import build_program
from kdjax.train.setup import data_source, load_teachers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--real", required=True, help="workdir holding teacher/ and real/seed0 (the real-data student)")
    ap.add_argument("--arg", default="variant=local,data=fsdd")
    ap.add_argument("--sets", required=True, help="name@inversion stage dir, comma separated")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    cfg = frami.get_config(a.arg)
    st = stages_lib.stage_runs(cfg, a.real, names=["inv_di"])[0][3]
    src = data_source(st.data, "train")
    p_inv = build_program(st, src.num_classes, src.sample_rate)
    teachers = load_teachers(st, a.real)
    p_real = build_program(cfg.stages.real, src.num_classes, src.sample_rate)
    student = p_real.models["student"]
    v = load_best_variables(os.path.join(a.real, "real", "seed0"), "student")
    logits = jax.jit(lambda v, f: student.apply(v, f, train=False)[0])

    def stats(x):
        return dict(range=[float(x.min()), float(x.max())], frame_std=float(np.mean(np.std(x, axis=-1))))

    rows = {}
    # The real reference: one batch of real train clips (every k-th, start-cropped).
    bsz = int(st.invert.batch_size)
    s = int(round(st.data.clip_seconds * src.sample_rate))
    idx = np.linspace(0, len(src) - 1, bsz).astype(int)
    audio, y = np.zeros((bsz, s), np.float32), np.zeros((bsz, src.num_classes), np.float32)
    for j, i in enumerate(idx):
        ex = src[int(i)]
        w = np.asarray(ex["audio"], np.float32)[:s]
        audio[j, :len(w)], y[j] = w, ex["labels"]
    x = np.asarray(p_inv.frontends["mel"](jnp.asarray(audio)))
    _, m = inversion_objective(p_inv, "mel", teachers, jnp.asarray(x), jnp.asarray(y), jax.random.key(0))
    acc = float(np.mean(np.asarray(logits(v, x)).argmax(-1) == y.argmax(-1)))
    rows["real train clips"] = dict(transfer=acc, **stats(x), **{k[5:]: float(m[k]) for k in m if k.startswith("loss/")})
    for item in a.sets.split(","):
        name, d = item.rsplit("@", 1)
        syn = synthetic_source(root=os.path.join(d, "synthetic"))
        x, t = syn.arrays["features/mel"], syn.arrays["labels"].argmax(-1)
        z = np.concatenate([np.asarray(logits(v, x[i:i + bsz])) for i in range(0, len(x), bsz)])
        with open(os.path.join(d, "metrics.jsonl")) as f:
            last = json.loads(f.readlines()[-1])
        rows[name] = dict(transfer=float(np.mean(z.argmax(-1) == t)), **stats(x),
                          **{k[12:]: float(last[k]) for k in last if k.startswith("invert/loss/")})
    with open(a.out, "w") as f:
        json.dump(rows, f, indent=1)
    print("| set | transfer (real-data student on the set's targets) | range dB | frame std dB | BN | TV | CE |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['transfer']:.3f} | {r['range'][0]:.0f}..{r['range'][1]:.0f} | {r['frame_std']:.1f} | "
              f"{r.get('bn', float('nan')):.0f} | {r.get('tv', float('nan')):.0f} | {r.get('ce', float('nan')):.2f} |")


if __name__ == "__main__":
    main()
