"""Multi-representation knowledge distillation (MRKD): peers on different input representations
learn jointly by mutual distillation; any one peer is deployed alone.

Paper: Gao, Xu, Wang, Peng, "Multi-Representation Knowledge Distillation For Audio
Classification", arXiv 2002.09607 (2020); journal version Multimedia Tools and Applications
(2022), doi 10.1007/s11042-021-11610-8. No public code (/work/shared/PAPERS.md section 1).

What is reproduced (known from the paper): the raw waveform is turned into several
representations, one model per representation, all trained jointly end to end, sharing
knowledge by distillation; each model improves; inference uses one model. Here the K peers are
K trainable models in `models` (each with its own jnp front-end, computed on device inside the
ONE jitted train step), and every peer's objective is

    L_i = CE(y, p_i) + weight * M_i,     p_k = softmax(z_k / T),  sg = stop_gradient
    loss=dml:      M_i = w * sum_{j != i} KL(sg(p_j) || p_i),  w = 1/(K-1) (reduction=mean) or 1 (sum)
    loss=ensemble: M_i = KL(sg(mean_{j != i} p_j) || p_i)
    (times T^2 when t2_scale; `kdjax.losses.mutual_kl` over `peers.logits` [K, B, C])

summed over peers in one step (simultaneous updates; the official DML code updates peers
sequentially). The targets are stop-gradient, so each peer receives exactly its own gradient
(tests/train/test_mrkd.py checks this and the loss values against NumPy).

UNKNOWN in the paper, hence config arguments with documented defaults (assumptions, not the
paper's values): the loss (`loss=dml`, Deep Mutual Learning, Zhang et al. CVPR 2018, the
closest published base; or `loss=ensemble`), the reduction over peers (`reduction=mean`, DML
Eq. 10; `sum` as the DML code), the temperature (`temperature=1`, DML), the weight
(`weight=1`), the representation set (`reps=logmel+mfcc+stft`, tiny: `logmel+mfcc`; `cqt` is
available), the architectures (here 1-D temporal CNNs, `temporal_cnn`, fastest on 2 CPU cores),
the datasets (which DCASE edition / FSDKaggle) and all hyperparameters.

Representations (`reps`, any subset of size >= 2, see `representation`): `logmel` (64 mel bins,
dB), `mfcc` (40 MFCCs from 40 mels + deltas + delta-deltas, 120 channels), `stft` (linear
log-power spectrogram, n_fft/2+1 bins, dB), `cqt` (log-CQT, 12 bins/octave from C1, dB).
Windows 25 ms, hops 10 ms (CQT: 16 ms at 16 kHz); `[B, T, F]` features, F used as channels.

Stages (`stage=all` runs both; each arm repeats over `seeds`, or over the 5 official ESC-10
folds with `data=esc10`, `{fold}` in the split names; the same seed per repetition in both arms):
  alone  the K peers with cross-entropy only. With `alone=shared` (default) they are trained
         side by side in one step; nothing couples them (per-peer CE, per-parameter AdamW, no
         global gradient clipping: `grad_clip` must be 0), so this is exactly K independent
         CE trainings with the same initialisations, data order and steps as `joint` (the
         only difference between the arms is the mutual term). `alone=separate` runs one
         stage `alone_<rep>` per peer instead (own process setup; different init keys).
  joint  the K peers, per-peer CE + weight * mutual term.
Each arm writes result.json (every peer's test accuracy of its best-by-validation parameters,
or its last ones where there is no validation split) and `logits_test.npz` (every peer's test
logits + labels); `configs/results/mrkd/make_table.py` builds the results table from the
workdirs (each peer joint vs alone, paired difference with 95% interval, and the logit-average
ensemble of the independently trained peers).

Variants:
  local  small models sized to the 2-core CPU (data=esc10 | sc12 | fsdd):
         esc10  ESC-10 (`esc50` source, subset esc10, 16 kHz, 5 s), official 5-fold CV:
                train on train_fold{fold} (4 folds, 320 clips), test on test_fold{fold} (80
                clips). Defaults = the second round's settings (configs/results/mrkd/README.md,
                ESC-10 plan): loss=ensemble, temperature=3 (SC12's validation choice), 600 steps,
                validation every 40 on a stratified 20% carved from the training folds
                (val_fraction=0.2), early stopping patience=5 (run with seeds_per_fold=2;
                round 1: loss=dml, temperature=1, 150 steps, last parameters, patience=0).
         sc12   Speech Commands v2, 12 classes, speaker-disjoint train/validation/test built
                from the official test set (`speech_commands` source), 1 s, 16 kHz; model
                selection on validation every 100 steps. Defaults = the second round's
                settings chosen on validation: loss=ensemble, temperature=3, 2600 steps (run
                with seeds=5; round 1: loss=dml,temperature=1,steps=400,seeds=3).
         fsdd   FSDD (8 kHz), official split (takes 0-4 test, 5-9 validation, 10-49 train).
  tiny   2 steps on a few clips (tests/test_configs.py).
  paper  the paper's task types, for users who have the data (NOT runnable here: neither
         data set is on this machine): data=dcase (DCASE 2018/2019 Task 1A acoustic scenes,
         `dcase_scenes` source, 48 kHz, 10 s, train fold1_train, test fold1_evaluate) or
         data=fsdkaggle2018 (DCASE 2018 Task 2 general-purpose tagging, `fsd50k` source with
         corpus=fsdkaggle2018, 44.1 kHz, single-label 41 classes; train/test only, so no
         validation split), larger temporal CNNs. Settings are assumptions (see above).
         tests/test_config_variants.py runs it for 2 steps on miniature copies of the
         datasets' layouts.

Results (measured tables, paired intervals, runtimes, commands, logs):
configs/results/mrkd/README.md.
Claim (`c.claim`, read by the results report): joint vs alone, first peer, test accuracy.

Run:
  python -m kdjax.main --config configs/mrkd.py:data=esc10 --workdir workdirs/mrkd_esc10
  python -m kdjax.main --config configs/mrkd.py:data=sc12,seeds=5 --workdir workdirs/mrkd_sc12
  python -m configs.results.mrkd.round2.make_table sc12     # round 2's table (committed runs)
  python -m kdjax.main --config configs/mrkd.py:data=esc10,stage=joint,loss=ensemble --workdir ...
  python -m configs.results.mrkd.make_table esc10=workdirs/mrkd_esc10 ...
Arguments: variant=local|tiny|paper, data=esc10|sc12|fsdd (local/tiny) or dcase|fsdkaggle2018
(paper), reps=`+`-separated subset of logmel, mfcc, stft, cqt (`+`, since
`,` separates config arguments),  loss=dml|ensemble (default: ensemble for local sc12, dml
otherwise), reduction=mean|sum, temperature (T > 0; default 3 for local sc12, 1 otherwise), weight (>= 0), t2_scale, stage (stage names joined by
`+`, e.g. `alone_logmel+joint`, or the groups `all`, `alone`; configs/common.py "Stage lists"),
alone=shared|separate, seeds (ignored for esc10, which uses its folds), folds (esc10: the first
N of the 5 folds, default 5; re-running with a larger N skips the finished runs), steps, batch, lr,
seeds_per_fold (esc10: seeds per fold, default 1; repeated cross-validation, stage_list.py),
eval_every (validation/best-model interval in steps; 0: the variant's default, steps // 4),
peer=temporal_cnn|cnn2d (the peers' architecture: 1-D temporal CNNs, the default and what the
results tables use, or PANNs-style 2-D CNNs, `PEER_2D`).

Raises (get_config): ValueError for an unknown variant/data/representation/loss/reduction/
stage/alone/folds/peer, fewer than 2 representations, a non-positive temperature or a negative weight.
"""

from __future__ import annotations

import math
from typing import Any

import ml_collections

from configs import common

REPS = ("logmel", "mfcc", "stft", "cqt")
LOSSES = {"dml": "peers", "ensemble": "ensemble"}
DATA_LOCAL = ("esc10", "sc12", "fsdd")
DATA_PAPER = ("dcase", "fsdkaggle2018")
# variant -> its data sets (tests/test_config_variants.py builds every pair)
VARIANTS = {"local": DATA_LOCAL, "tiny": DATA_LOCAL, "paper": DATA_PAPER}

# Temporal CNN peers (kdjax.models.temporal_cnn: features' F bins are the conv channels).
PEER_LOCAL = dict(stem_width=32, widths=(32, 48, 64), strides=(2, 2, 2), stem_stride=2, dropout=0.1)
PEER_TINY = dict(stem_width=8, widths=(8,), strides=(2,), stem_stride=2)
PEER_PAPER = dict(
    stem_width=64, widths=(64, 128, 128, 256), strides=(1, 2, 2, 2), stem_stride=2, dropout=0.2
)
# 2-D peers (`peer=cnn2d`, kdjax.models.cnn2d, PANNs-style; slower on CPU, closer to the paper's
# CNNs): widths per variant.
PEER_2D = {"local": dict(widths=(16, 32, 64, 128)), "tiny": dict(widths=(4, 8)),
           "paper": dict(widths=(64, 128, 256, 512))}
PEERS = ("temporal_cnn", "cnn2d")


PRESETS_16K = {"logmel": "logmel64_16k", "mfcc": "mfcc40_16k", "stft": "stft_16k", "cqt": "cqt_16k"}


def representation(name: str, sample_rate: int) -> dict[str, Any]:
    """The front-end config of one representation at `sample_rate` Hz (25 ms windows, 10 ms hops).

    The presets of `kdjax.frontends.PRESETS` (logmel64_16k, mfcc40_16k + deltas, stft_16k,
    cqt_16k) at `sample_rate` (`common.preset`: n_fft the next power of two >= the window, mel
    bands up to at most the Nyquist rate), with this recipe's windows and hops: round(25 ms x
    rate) and round(10 ms x rate) samples (Python's round, half to even: 1102 at 44.1 kHz).
    CQT at other rates than 16 kHz: hop the next power of two >= 16 ms, bins from C1 up to
    0.9 x Nyquist (above 16 kHz more bins than the library's preset, which keeps 84).

    Returns:
      A front-end dict for `kdjax.frontends.make_frontend` (output `[B, T, F]`).

    Raises:
      ValueError: an unknown representation name.
    """
    if name not in REPS:
        raise ValueError(
            f"config argument reps: unknown representation {name!r}; valid: {list(REPS)}"
        )
    sr = int(sample_rate)
    if name == "cqt":
        fe = common.preset(
            "cqt_16k", sample_rate=sr
        )  # the hop: the library's rule is this recipe's
        if sr != 16000:  # bins up to 0.9 x Nyquist (the library keeps the preset's 84 as a ceiling)
            fe["n_bins"] = int(math.floor(12 * math.log2(0.9 * sr / 2 / fe["fmin"])))
        return fe
    fe = common.preset(
        PRESETS_16K[name],
        sample_rate=sr,
        win_length=int(round(0.025 * sr)),
        hop_length=int(round(0.010 * sr)),
    )
    if name == "mfcc":  # MFCC + deltas + delta-deltas (3 x 40 channels)
        fe = dict(fe, deltas_order=2, delta_width=9)
    return fe


def _data(a: ml_collections.ConfigDict) -> tuple[dict[str, Any], list[int] | None, int]:
    """(data block, folds or None, sample rate) of the chosen data set."""
    tiny = a.variant == "tiny"
    mx = dict(max_examples=16) if tiny else {}
    if a.data == "esc10":
        d = common.esc10_folds(clip_seconds=1.0 if tiny else 5.0, **mx)
        return d, list(common.ESC10_FOLDS), 16000
    if a.data == "sc12":
        return common.data("speech_commands", clip_seconds=1.0, cache=True, **mx), None, 16000
    if a.data == "fsdd":
        return common.data("fsdd", clip_seconds=1.0, allow_download=False, **mx), None, 8000
    if a.data == "dcase":
        return (
            common.data("dcase_scenes", eval_split="", test_split="evaluate", clip_seconds=10.0),
            None,
            48000,
        )
    if a.data == "fsdkaggle2018":
        # Clips of 0.3-30 s: 4 s random crops for training, the first 4 s at test (an assumption).
        return (
            common.data("fsd50k", eval_split="", corpus="fsdkaggle2018", clip_seconds=4.0),
            None,
            44100,
        )
    raise AssertionError(a.data)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The staged MRKD config (see the module docstring for arguments and stages).

    Raises:
      ValueError: bad arguments (see the module docstring).
    """
    a = common.parse_arg(
        arg,
        variant="local",
        data="esc10",
        reps="",
        loss="",
        reduction="mean",
        temperature=0.0,
        weight=1.0,
        t2_scale=True,
        stage="all",
        alone="shared",
        seeds=3,
        folds=5,
        seeds_per_fold=1,
        steps=0,
        batch=0,
        lr=0.0,
        eval_every=0,
        peer="temporal_cnn",
    )
    if a.variant not in ("local", "tiny", "paper"):
        raise ValueError(f"config argument variant={a.variant!r}: expected local, tiny or paper")
    valid_data = DATA_PAPER if a.variant == "paper" else DATA_LOCAL
    if a.variant == "paper" and a.data == "esc10":  # the default data set of the other variants
        a.data = "dcase"
    if a.data not in valid_data:
        raise ValueError(
            f"config argument data={a.data!r}: expected one of {valid_data} for variant={a.variant}"
        )
    # Default set: logmel+mfcc+stft (variant=tiny: logmel+mfcc, to keep the config test fast).
    reps = [
        r
        for r in str(
            a.reps or ("logmel+mfcc" if a.variant == "tiny" else "logmel+mfcc+stft")
        ).split("+")
        if r
    ]
    if len(reps) < 2 or len(set(reps)) != len(reps):
        raise ValueError(
            f"config argument reps={a.reps!r}: expected >= 2 distinct representations of {list(REPS)}"
        )
    # Data-set defaults (`loss=`, `temperature=0`: unset): the second round's settings chosen on
    # validation for local sc12 (configs/results/mrkd/README.md, round 2: ensemble target, T = 3);
    # DML with T = 1 elsewhere (round 1's assumptions).
    tuned = a.variant == "local" and a.data in ("sc12", "esc10")
    a.loss = a.loss or ("ensemble" if tuned else "dml")
    a.temperature = a.temperature or (3.0 if tuned else 1.0)
    if a.variant == "local" and a.data == "esc10":
        # The ESC-10 round-2 budget where the arguments are not given (patience=0 turns it off).
        common.default_unless_given(a, arg, dict(patience=5, val_fraction=0.2))
    if a.loss not in LOSSES:
        raise ValueError(f"config argument loss={a.loss!r}: expected one of {sorted(LOSSES)}")
    if a.reduction not in ("mean", "sum"):
        raise ValueError(f"config argument reduction={a.reduction!r}: expected mean or sum")
    if not a.temperature > 0:
        raise ValueError(f"config argument temperature={a.temperature}: expected > 0")
    if a.weight < 0:
        raise ValueError(f"config argument weight={a.weight}: expected >= 0")
    if a.peer not in PEERS:
        raise ValueError(f"config argument peer={a.peer!r}: expected one of {PEERS}")
    if a.alone not in ("shared", "separate"):
        raise ValueError(f"config argument alone={a.alone!r}: expected shared or separate")
    data, folds, sr = _data(a)
    fes = {r: representation(r, sr) for r in reps}  # raises for unknown names
    tiny, paper = a.variant == "tiny", a.variant == "paper"
    peer_kw = PEER_TINY if tiny else PEER_PAPER if paper else PEER_LOCAL
    if a.peer == "cnn2d":
        peer_kw = PEER_2D[a.variant]
    # Steps/batch/lr per data set (local: sized to ~2.5 min per arm on the loaded 2-core CPU).
    # sc12: round 2's ceiling (2600 steps = 21 epochs, validation every 100; round 1: 400).
    # esc10: round 2's ceiling (600 steps = 75 epochs of 260 clips, validation every 40; round 1: 150).
    steps = {"esc10": 600, "sc12": 2600, "fsdd": 400, "dcase": 20000, "fsdkaggle2018": 30000}[a.data]
    steps = 2 if tiny else (a.steps or steps)
    batch = 8 if tiny else (a.batch or (64 if paper else 32))
    lr = a.lr or 3e-3

    def stage(names: list[str], mutual: bool, baseline: str = "") -> ml_collections.ConfigDict:
        losses = {f"ce_{r}": common.ce(r, weight=1.0) for r in names}
        if mutual:
            losses["mutual"] = dict(
                fn="mutual_kl",
                weight=a.weight,
                inputs=["peers.logits"],
                kw=dict(
                    temperature=a.temperature,
                    reduction=a.reduction,
                    target=LOSSES[a.loss],
                    t2_scale=a.t2_scale,
                ),
            )
        # Independence of the alone peers relies on no global gradient clipping (grad_clip=0,
        # train_stage's default; see docstring).
        return common.train_stage(
            data=data,
            models={r: dict(model=a.peer, kw=peer_kw, frontend=fes[r]) for r in names},
            losses=losses,
            baseline=baseline,
            batch_size=batch,
            num_steps=steps,
            lr=lr,
            warmup_steps=0 if tiny else steps // 20,
            eval_every=2 if tiny else (
                a.eval_every or {"sc12": 100, "esc10": 40}.get(a.data, max(steps // 4, 1))),
            checkpoint_every=2 if tiny else max(steps // 4, 1),
            log_every=1 if tiny else 25,
            eval_model=names[0],
            quiet=True,
        )

    # Arms: `alone` (one stage, or one per peer with alone=separate) and `joint`; summary.json's
    # own paired line compares the first peer (eval_model); make_table.py does all.
    alone = {"alone": reps} if a.alone == "shared" else {f"alone_{r}": [r] for r in reps}
    stages = {name: stage(names, mutual=False) for name, names in alone.items()}
    stages["joint"] = stage(reps, mutual=True, baseline=next(iter(alone)))
    assert not any(st.optimizer.grad_clip for st in stages.values())
    c = ml_collections.ConfigDict()
    c.stages = stages
    common.apply_budgets(c.stages, a)  # patience=, plateau=, ... (configs/common.py BUDGET_ARGS)
    c.run = common.stage_run(a.stage, stages, {"all": [*alone, "joint"], "alone": list(alone)})
    c.seeds = 1 if folds else a.seeds
    if folds:
        if not 1 <= a.folds <= len(folds):
            raise ValueError(f"config argument folds={a.folds}: expected 1..{len(folds)}")
        # The first `folds` folds (fold f always gets seed f - 1, as in the full run), so a
        # run can be done fold-prefix by fold-prefix, pairing both arms early.
        c.folds = folds[: a.folds]
        c.seeds_per_fold = a.seeds_per_fold  # fold<f>_seed<r> for r >= 1 (kdjax.train.stage_list)
    c.reps = ",".join(reps)  # read by make_table.py
    c.claim = common.claim(
        stages,
        arm="joint",
        baseline=next(iter(alone)),
        effect=0.01,
        direction="greater",
        source="Gao et al. 2020 (arXiv 2002.09607) claim 'each model improves' but give no number "
        "comparable to ours (PAPERS.md section 1); 1 accuracy point, the smallest gain of a "
        "peer that would matter for a deployed single model, is our stated value",
        test_train_ratio=80 / 320 if folds else 0.0,
    )  # ESC-10: 80 test / 320 train clips per fold
    return c
