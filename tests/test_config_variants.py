"""Every variant of every recipe config builds, its stage list parses, its claim names real
stages; and every `variant=paper` config runs 2 steps on miniature copies of its datasets'
published layouts (tiny synthetic files in tmp_path, as tests/data/test_corpora_layouts.py
makes), so a user who holds the paper's data is not the first to run it."""

import importlib
import json

import numpy as np
import pytest
import soundfile as sf

from configs import common
from kdjax.report import check_claim
from kdjax.train import stage_list, stages

RECIPES = ("fsdd", "mrkd", "iusp", "temporal_kd", "east", "frami")


# ------------------------------------------------------------------------------------------
# One stage-list syntax
# ------------------------------------------------------------------------------------------


def test_stage_list_parse_format_round_trip():
    for names in (["teacher"], ["teacher", "iusp_small"], ["a", "b", "a"]):
        text = common.format_stage_list(names)
        assert common.parse_stage_list(text) == names
        assert common.format_stage_list(common.parse_stage_list(text)) == text
    assert common.format_stage_list(["teacher", "kd"]) == "teacher+kd"
    assert common.parse_stage_list("+a++b+") == ["a", "b"]
    with pytest.raises(ValueError, match="join stage names with '\\+'"):
        common.parse_stage_list("a,b")


def test_stage_run_groups_order_and_errors():
    st = ["teacher", "student", "kd"]
    assert common.stage_run("kd+teacher", st) == "kd,teacher"
    assert common.stage_run("all", st, {"all": st}) == "teacher,student,kd"
    assert common.stage_run("all+kd", st, {"all": ["teacher"]}) == "teacher,kd"
    with pytest.raises(
        ValueError, match=r"unknown stage 'kdd'; stages: teacher, student, kd; groups: all"
    ):
        common.stage_run("teacher+kdd", st, {"all": st})
    with pytest.raises(ValueError, match="at least one stage"):
        common.stage_run("", st)


# (recipe, config argument, expected run list)
STAGE_ARGS = [
    # iusp documented a comma list, which parse_arg (splitting on ",") could never accept
    ("iusp", "variant=local,stage=teacher+bce_small+iusp_small",
     "teacher,bce_small,cache,iusp_small"),  # fmt: skip
    ("iusp", "variant=tiny", "teacher,sp_small,iusp_small"),
    ("iusp", "variant=local,student=large,arm=sp", "teacher,cache,sp_large"),
    ("fsdd", "stage=student+kd", "student,kd"),
    ("fsdd", "stage=all", "teacher,student,kd"),
    ("mrkd", "stage=alone,alone=separate,reps=logmel+mfcc", "alone_logmel,alone_mfcc"),
    ("mrkd", "stage=all", "alone,joint"),
    ("temporal_kd", "variant=local,stage=teacher+rollout+crnn_l010", "teacher,rollout,crnn_l010"),
    ("east", "variant=local,arm=kd", "cache,probe,kd"),
    ("frami", "variant=tiny,stage=inv_adv+adv", "inv_adv,adv"),
    ("frami", "variant=tiny", "teacher,inv_frami,frami"),
]


@pytest.mark.parametrize("recipe,arg,run", STAGE_ARGS)
def test_stage_argument_of_every_recipe(recipe, arg, run):
    assert importlib.import_module(f"configs.{recipe}").get_config(arg).run == run


@pytest.mark.parametrize("recipe", ["fsdd", "mrkd", "iusp", "temporal_kd", "frami"])
def test_unknown_stage_name_is_a_clear_error(recipe):
    mod = importlib.import_module(f"configs.{recipe}")
    with pytest.raises(ValueError, match="unknown stage 'nope'"):
        mod.get_config("stage=teacher+nope" if recipe != "mrkd" else "stage=joint+nope")


def test_comma_stage_list_names_the_plus_syntax():
    from configs import iusp

    with pytest.raises(ValueError, match=r"'bce_small' has no '='.*stage=a\+b"):
        iusp.get_config("variant=local,stage=teacher,bce_small")


# ------------------------------------------------------------------------------------------
# Every variant of every config builds
# ------------------------------------------------------------------------------------------


def _variant_args():
    out = []
    for recipe in RECIPES:
        mod = importlib.import_module(f"configs.{recipe}")
        for variant, datasets in mod.VARIANTS.items():
            for data in datasets:
                arg = f"variant={variant}" + (f",data={data}" if data else "")
                if recipe == "east" and variant == "paper":
                    arg += ",teacher=byo,byo_dir=/emb"
                out.append((recipe, arg))
    return out


@pytest.mark.parametrize("recipe,arg", _variant_args())
def test_every_variant_builds(recipe, arg, tmp_path):
    cfg = importlib.import_module(f"configs.{recipe}").get_config(arg)
    # every stage of the run list resolves (stage references, folds, seeds)
    runs = stage_list.stage_runs(cfg, str(tmp_path), names=list(cfg.stages))
    assert {r[0] for r in runs} == set(cfg.stages)
    for name in cfg.run.split(","):
        assert name in cfg.stages
    # the claim names train stages and the metric their eval_metric reports
    claim = cfg.claim.to_dict()
    assert claim == common.claim(
        cfg.stages,
        arm=claim["primary"]["arm"],
        baseline=claim["primary"]["baseline"],
        effect=claim["effect"],
        source=claim["source"],
        metric=claim["metric"],
        direction=claim["direction"],
        secondary=[(s["arm"], s["baseline"]) for s in claim["secondary"]],
        paper=claim.get("paper", ""),
        test_train_ratio=claim.get("test_train_ratio", 0.0),
    )
    check_claim(claim)  # the results reports read it
    json.dumps(cfg.to_dict())  # plain data only (written next to the runs)


def test_claim_validation():
    st = importlib.import_module("configs.fsdd").get_config("").stages
    ok = common.claim(st, arm="kd", baseline="student", effect=0.01, source="x")
    assert (
        ok["metric"] == "test_accuracy" and ok["direction"] == "greater" and ok["secondary"] == []
    )
    for kw, msg in [
        (dict(arm="kdd"), "arm='kdd'"),
        (dict(baseline="kd"), "both 'kd'"),
        (dict(effect=0.0), "effect"),
        (dict(direction="up"), "direction"),
        (dict(metric="test_micro_auprc"), "reports 'test_accuracy'"),
        (dict(source=" "), "source"),
    ]:
        args = dict(arm="kd", baseline="student", effect=0.01, source="x") | kw
        with pytest.raises(ValueError, match=msg):
            common.claim(st, **args)


# ------------------------------------------------------------------------------------------
# Every paper variant runs 2 steps on miniature layouts of its datasets
# ------------------------------------------------------------------------------------------
# Miniature copies of each corpus's published layout (file names, metadata columns, split
# files; see tests/data/test_corpora_layouts.py for the parsing itself): a few 0.25 s clips of
# noise at the corpus's own sample rate, several per class and split, so that every split the
# config names is non-empty and every multi-label split has positives.


def _wav(path, sr, seed=0, seconds=0.25):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sf.write(path, (0.1 * rng.standard_normal(int(sr * seconds))).astype(np.float32), sr)


def _dcase_scenes(root):
    d = root / "dcase_scenes"
    meta, train, ev = ["filename\tscene_label\tidentifier\tsource_label"], [], []
    for i, (scene, place) in enumerate([(s, p) for s in ("airport", "park") for p in "abcdef"]):
        fn = f"audio/{scene}-{place}-{i}.wav"
        meta.append(f"{fn}\t{scene}\t{place}\ta")
        (ev if place == "f" else train).append(f"{fn}\t{scene}")
        _wav(d / fn, 48000, i)
    (d / "meta.csv").write_text("\n".join(meta) + "\n")
    (d / "evaluation_setup").mkdir()
    for name, rows in (("fold1_train", train), ("fold1_evaluate", ev)):
        (d / "evaluation_setup" / f"{name}.csv").write_text(
            "filename\tscene_label\n" + "\n".join(rows) + "\n"
        )


def _fsdkaggle2018(root):
    d = root / "fsdkaggle2018"
    (d / "FSDKaggle2018.meta").mkdir(parents=True)
    tr = [f"t{i}.wav,{('Bark', 'Cello')[i % 2]},1,{i},CC0" for i in range(10)]
    te = [f"e{i}.wav,{('Bark', 'Cello')[i % 2]},Public,{i},CC0" for i in range(4)]
    (d / "FSDKaggle2018.meta" / "train_post_competition.csv").write_text(
        "fname,label,manually_verified,freesound_id,license\n" + "\n".join(tr) + "\n"
    )
    (d / "FSDKaggle2018.meta" / "test_post_competition_scoring_clips.csv").write_text(
        "fname,label,usage,freesound_id,license\n" + "\n".join(te) + "\n"
    )
    for i in range(10):
        _wav(d / "FSDKaggle2018.audio_train" / f"t{i}.wav", 44100, i)
    for i in range(4):
        _wav(d / "FSDKaggle2018.audio_test" / f"e{i}.wav", 44100, 10 + i)


def _sonyc_ust(root):
    d = root / "sonyc_ust"
    cols = [
        "1-1_small-sounding-engine_presence",
        "1-2_large-sounding-engine_presence",
        "1-X_engine-of-uncertain-size_presence",
        "8-1_dog-barking-whining_presence",
        "1_engine_presence",
        "8_dog_presence",
    ]
    rows = []
    for split in ("train", "validate", "test"):
        for i in range(8):
            fine = [(1, 0, 0, 0), (0, 1, 0, 1), (0, 0, 1, 1), (0, 0, 0, 1)][i % 4]
            coarse = (int(any(fine[:3])), fine[3])
            rows.append(",".join([split, "0", f"{split}{i}.wav", "1", *map(str, fine + coarse)]))
            _wav(d / split / f"{split}{i}.wav", 44100, i)
    (d / "annotations.csv").write_text(
        "split,sensor_id,audio_filename,annotator_id,"
        + ",".join(cols)
        + "\n"
        + "\n".join(rows)
        + "\n"
    )


def _openmic(root):
    d = root / "openmic-2018"
    (d / "partitions").mkdir(parents=True)
    (d / "class-map.json").write_text(json.dumps({f"inst{i:02d}": i for i in range(20)}))
    keys = [f"{i:06d}_0" for i in range(24)]
    y = np.zeros((24, 20), np.float32)
    m = np.zeros((24, 20), bool)
    for i in range(24):
        y[i, i % 3], m[i, :3] = 0.9, True
    np.savez(d / "openmic-2018.npz", Y_true=y, Y_mask=m, sample_key=np.array(keys))
    (d / "partitions" / "split01_train.csv").write_text("\n".join(keys[:18]) + "\n")
    (d / "partitions" / "split01_test.csv").write_text("\n".join(keys[18:]) + "\n")
    for i, k in enumerate(keys):
        _wav(d / "audio" / k[:3] / f"{k}.ogg", 44100, i)


def _magnatagatune(root):
    d = root / "magnatagatune"
    tags = [f"t{i}" for i in range(4)]
    lines = ["\t".join(["clip_id", *tags, "mp3_path"])]
    for i, folder in enumerate("0123456789abcdef"):
        y = [1, i % 2, (i + 1) % 2, 0]
        lines.append("\t".join([str(i), *map(str, y), f"{folder}/c{i}.mp3"]))
        _wav(d / "mp3" / folder / f"c{i}.mp3", 16000, i)
    (d / "annotations_final.csv").write_text("\n".join(lines) + "\n")


def _urbansound8k(root):
    from kdjax.data import urbansound8k

    d = root / "urbansound8k"
    lines = ["slice_file_name,fsID,start,end,salience,fold,classID,class"]
    for i, (fold, cid) in enumerate([(f, c) for f in (1, 2, 3, 4) for c in (0, 3, 6)]):
        name = f"{i}-{cid}-0-0.wav"
        lines.append(f"{name},{i},0,1,1,{fold},{cid},{urbansound8k.CLASS_NAMES[cid]}")
        _wav(
            d / "audio" / f"fold{fold}" / name, 16000, i
        )  # resampled to 16 kHz, as configs/frami.py asks
    (d / "metadata").mkdir()
    (d / "metadata" / "UrbanSound8K.csv").write_text("\n".join(lines) + "\n")


def _esc50(root):
    d = root / "esc50"
    lines = ["filename,fold,target,category,esc10,src_file,take"]
    for i, (fold, target) in enumerate([(f, t) for f in (1, 2, 3, 4) for t in (0, 1, 41)]):
        name = f"{fold}-{100 + i}-A-{target}.wav"
        lines.append(f"{name},{fold},{target},c{target},False,{100 + i},A")
        _wav(d / "audio" / name, 44100, i)
    (d / "meta").mkdir()
    (d / "meta" / "esc50.csv").write_text("\n".join(lines) + "\n")


def _audiomnist(root):
    d = root / "audiomnist" / "data"
    for spk in (1, 2, 3, 49, 55):
        for digit in (0, 3, 7):
            _wav(d / f"{spk:02d}" / f"{digit}_{spk:02d}_0.wav", 48000, spk + digit)
    (d / "audioMNIST_meta.txt").write_text(json.dumps({"01": {"gender": "male"}}))


def _speech_commands_v2(root):
    """The full archive: word folders, the official lists, `_background_noise_` (20 s)."""
    d = root / "speech_commands_v2"
    val, test = [], []
    for w, word in enumerate(("yes", "no", "up", "bed")):  # "bed": an _unknown_ word
        for k in range(5):
            name = f"{word}/{k:08x}_nohash_0.wav"
            _wav(d / name, 16000, 10 * w + k, seconds=1.0)
            if k == 3:
                val.append(name)
            elif k == 4:
                test.append(name)
    (d / "validation_list.txt").write_text("\n".join(val) + "\n")
    (d / "testing_list.txt").write_text("\n".join(test) + "\n")
    _wav(d / "_background_noise_" / "white_noise.wav", 16000, 99, seconds=20.0)


def _fsd50k(root):
    d = root / "fsd50k"
    gt = d / "FSD50K.ground_truth"
    gt.mkdir(parents=True)
    (gt / "vocabulary.csv").write_text("0,Bark,/m/05tny_\n1,Speech,/m/09x0r\n2,Music,/m/04rlf\n")
    labels = ['"Bark,Speech","/m/05tny_,/m/09x0r"', "Music,/m/04rlf", "Speech,/m/09x0r"]
    dev = [f"{i},{labels[i % 3]},{'val' if i >= 9 else 'train'}" for i in range(12)]
    (gt / "dev.csv").write_text("fname,labels,mids,split\n" + "\n".join(dev) + "\n")
    (gt / "eval.csv").write_text(
        "fname,labels,mids\n" + "\n".join(f"{20 + i},{labels[i % 3]}" for i in range(3)) + "\n"
    )
    for i in range(12):
        _wav(d / "FSD50K.dev_audio" / f"{i}.wav", 44100, i)
    for i in range(3):
        _wav(d / "FSD50K.eval_audio" / f"{20 + i}.wav", 44100, 20 + i)


def _byo_embeddings(root, out):
    """Stand-in teacher embeddings `[T_e=2, D=8]` per clip stem (`teacher=byo`)."""
    out.mkdir()
    for i, p in enumerate(
        sorted(x for x in root.rglob("*") if x.suffix in (".wav", ".flac", ".ogg", ".mp3"))
    ):
        np.save(
            out / f"{p.stem}.npy",
            np.random.default_rng(i).standard_normal((2, 8)).astype(np.float32),
        )


def _models(recipe):
    """Model kw of the recipe's tiny variant for each model/teacher name (compile time)."""
    mod = importlib.import_module(f"configs.{recipe}")
    if recipe == "mrkd":
        return {r: mod.PEER_TINY for r in mod.REPS}
    if recipe == "iusp":
        return {"teacher": mod.TINY_TEACHER, "student": mod.TINY_STUDENT}
    if recipe == "frami":
        return {
            "teacher": mod.TEACHER_TINY_BY_MODEL,  # by teacher_model (default stats_pool_net)
            "t": mod.TEACHER_TINY_BY_MODEL,
            "student": mod.STUDENT_TINY,
            "s": mod.STUDENT_TINY,
            "proj": dict(width=mod.TEACHER_TINY["widths"][-1]),
        }
    if recipe == "temporal_kd":  # per student architecture
        return {"student": mod.TINY_STUDENT_KW}
    if recipe == "east":  # the paper's CP-ResNet / Mobile-FCN, narrower and shallower
        return {
            "student": {
                "cp_resnet": dict(
                    base_channels=4, rho=7, blocks_per_stage=(1, 1, 1), maxpool=((0,), (), ())
                ),
                "mobile_fcn": dict(
                    widths=(4, 4), pools=((4, 2), (3, 2)), full_conv_layers=1, block="separable"
                ),
            }
        }
    raise AssertionError(recipe)


# (recipe, data, layout builders, extra config arguments, stages to run). Stages: those that
# exercise every distinct path of the paper variant once (the other arms differ in loss weights
# only); a second data set of a recipe runs the stages its data changes.
PAPER_RUNS = [
    ("mrkd", "dcase", [_dcase_scenes], "steps=2,batch=8", "joint"),
    ("mrkd", "fsdkaggle2018", [_fsdkaggle2018], "steps=2,batch=8", "joint"),
    ("iusp", "sonyc_coarse", [_sonyc_ust], "steps=2,teacher_steps=2,batch=8", "teacher+iusp_small"),
    ("iusp", "sonyc_fine", [_sonyc_ust], "steps=2,teacher_steps=2,batch=8", "teacher"),
    ("east", "openmic", [_openmic], "steps=2,probe_steps=2,batch=8,arm=dcor_kd", ""),
    ("east", "mtat", [_magnatagatune], "steps=2,probe_steps=2,batch=8,arm=dcor_kd", ""),
    ("frami", "us8k", [_urbansound8k], "", "teacher+inv_di+di"),
    # frami's inversions and synthetic-data students read only the data's metadata (shapes,
    # classes) and its test split, which the teacher stage reads too
    ("frami", "esc50", [_esc50], "", "teacher"),
    ("frami", "audiomnist", [_audiomnist], "", "teacher"),
    # temporal_kd: the lambda-0 students only (the teacher is wav2vec 2.0, see below)
    ("temporal_kd", "sc2", [_speech_commands_v2], "steps=2,batch=8", "temporal_cnn_l000"),
    ("temporal_kd", "fsd50k", [_fsd50k], "steps=2,batch=8", "crnn_l000"),
]
# accept=0: 2 inversion steps cannot pass the invert stage's acceptance check (0.95 at paper)
FRAMI_SIZES = "teacher_steps=2,student_steps=2,syn_batches=1,syn_batch=8,inv_steps=2,accept=0"

# temporal_kd's paper teacher is wav2vec 2.0 fine-tuned from a Hugging Face checkpoint
# (`w2v_checkpoint`), which cannot be downloaded here: its `teacher` stage and every lambda > 0
# student (which reads that teacher) are skipped; the lambda-0 students run on the paper's data.


@pytest.mark.slow
@pytest.mark.parametrize(
    "recipe,data,layouts,extra,run", PAPER_RUNS, ids=[f"{r}-{d}" for r, d, *_ in PAPER_RUNS]
)
def test_paper_variant_runs_two_steps_on_a_miniature_layout(
    recipe, data, layouts, extra, run, tmp_path, monkeypatch
):
    root = tmp_path / "data"
    for make in layouts:
        make(root)
    monkeypatch.setenv("KDJAX_DATA_DIR", str(root))
    args = [f"variant=paper,data={data},seeds=1", extra, f"stage={run}" if run else ""]
    if recipe == "frami":
        args.append(FRAMI_SIZES)
    if recipe == "east":
        _byo_embeddings(root, tmp_path / "emb")
        args.append(f"teacher=byo,byo_dir={tmp_path / 'emb'}")
    cfg = importlib.import_module(f"configs.{recipe}").get_config(",".join(a for a in args if a))
    kws = _models(recipe)
    with cfg.unlocked():
        for st in cfg.stages.values():
            for block in ("models", "teachers"):
                for name, node in (st.get(block) or {}).items():
                    kw = kws.get(name)
                    if (
                        isinstance(kw, dict)
                        and node.model in kw
                        and isinstance(kw[node.model], dict)
                    ):
                        kw = kw[node.model]  # east: per student architecture
                    if kw is not None and node.get("kw") is not None:
                        node.kw = dict(kw)
            if st.get("kind", "train") == "train":
                # 2 steps, batch 8 (the 8 simulated devices), 1 s clips: sizes only (the paper's
                # budgets are hours on a GPU)
                st.num_steps, st.batch_size, st.eval_batch_size = 2, 8, 8
                st.eval_every, st.checkpoint_every, st.log_every = 2, 2, 1
                st.schedule.warmup_steps = 0
                st.data.clip_seconds = 1.0
            elif st.get("kind") == "invert":
                st.invert.batch_size, st.invert.num_batches, st.invert.steps = 8, 1, 2
            else:
                st.batch_size = st.eval_batch_size = 8
                st.data.clip_seconds = 1.0
    runs = stage_list.stage_runs(cfg, str(tmp_path / "wd"))
    assert [r[0] for r in runs] == cfg.run.split(",")
    for _, _, wd, c in runs:
        result = stages.run_config(c, wd)
        if c.get("kind", "train") == "train":
            for m in result["models"].values():
                if "test" in m:
                    assert np.isfinite(m["test"][c.eval_metric]), (c.eval_metric, m["test"])
