"""Offline KD (issue #22): teacher outputs computed once by a cache stage and read from the batch
(`teachers.<t>.cached`, kdjax.train.program) instead of running the frozen teacher in the step.

- Without mixup, on real FSDD clips, the cached-teacher step's loss and gradients equal the
  live-teacher step's (the cache stage ran the same teacher, eval mode, on the same start crops).
- With mixup, cached logits are mixed as probabilities with the audio's own weights and partner
  (checked against a NumPy reference that recovers the weights from the mixed audio), features
  linearly.
"""

import copy
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kdjax.data import pipeline
from kdjax.data.join import teacher_key
from kdjax.train import loop
from kdjax.train.checkpoint import load_best_variables
from kdjax.train.forward import init_variables, mix
from kdjax.train.program import build_program
from kdjax.train.setup import load_teachers, make_optimizer, split_sources
from kdjax.train.stages import run_config
from kdjax.train.state import TrainState
from kdjax.train.step import jit_train_step, loss_and_grads
from tests.train.conftest import small

TINY = dict(stem_width=8, widths=(8, 8), strides=(2, 2), stem_stride=2)
KEY = teacher_key("teacher", "logits")


def _tiny(stage: str, **over):
    c = small(stage, **over)
    with c.unlocked():
        for m in list(c.models.values()) + list(c.teachers.values()):
            m.kw = dict(TINY)
    return c


def _cache_stage(root, **cache):
    """A cache stage of the teacher trained in `root / "teacher"`: its logits, `cache` fields."""
    c = _tiny("teacher")
    fe = dict(c.models.teacher.frontend)
    with c.unlocked():
        c.kind = "cache"
        c.models = {}
        teacher = dict(model="temporal_cnn", kw=TINY, frontend=fe, checkpoint=str(root / "teacher"))
        c.teachers = {"teacher": dict(teacher, checkpoint_model="teacher")}
        c.cache = dict(outputs={"logits": "teacher.teacher.logits"}, **cache)
    return c


@pytest.fixture(scope="module")
def cached_teacher(tmp_path_factory, data_dir):
    """A tiny FSDD teacher trained 4 steps, and a cache stage of its logits on every split."""
    root = tmp_path_factory.mktemp("offline")
    t = _tiny("teacher")
    with t.unlocked():
        t.data.eval_split = ""
    loop.train_and_evaluate(t, str(root / "teacher"))
    run_config(_cache_stage(root, splits=["train", "test"]), str(root / "cache"))
    return root


def _kd_configs(root, mixup=0.0):
    """The FSDD KD stage (tiny models) with the live teacher, and the same with its cached logits."""
    live = _tiny("kd", mixup_alpha=mixup)
    with live.unlocked():
        live.teachers.teacher.checkpoint = str(root / "teacher")
        live.data.train_crop = "start"
        live.data.eval_split = ""
    cached = copy.deepcopy(live)
    with cached.unlocked():
        cached.teachers.teacher.cached = {
            "logits": str(root / "cache" / "arrays" / "{split}" / "logits.npy")
        }
        cached.teachers.teacher.cached_mixup_temperature = float(live.losses.kd.kw.temperature)
    return live, cached


def _state(prog, cfg, teachers):
    params, stats = init_variables(prog, jax.random.key(0), 8000, teachers)
    tx, _ = make_optimizer(cfg)
    return TrainState.create(params=params, batch_stats=stats, tx=tx)


def _assert_cached_step_equals_live(root, live, cached, batch):
    """loss_and_grads of the cached-teacher program on `batch` equals the live teacher's on the
    same batch without the cached logits (loss terms rtol 1e-5; gradients rtol 1e-4, atol 1e-6).
    Returns (programs, initial state, teacher variables, live metrics) for further checks."""
    p_live, p_cached = build_program(live, 10, 8000), build_program(cached, 10, 8000)
    tv = {"teacher": load_best_variables(root / "teacher", "teacher")}
    state = _state(p_live, live, tv)
    rng = jax.random.key(3)
    live_batch = {k: x for k, x in batch.items() if k != KEY}
    g_live, m_live, _ = jax.jit(lambda s, t, b: loss_and_grads(s, t, b, rng, program=p_live))(
        state, tv, live_batch
    )
    g_cached, m_cached, _ = jax.jit(lambda s, b: loss_and_grads(s, {}, b, rng, program=p_cached))(
        state, batch
    )
    for k in ("loss", "loss/kd", "loss/ce"):
        np.testing.assert_allclose(float(m_cached[k]), float(m_live[k]), rtol=1e-5, err_msg=k)
    assert float(m_live["loss/kd"]) > 1e-3  # the KD term is not trivially zero
    for a, b in zip(jax.tree.leaves(g_cached), jax.tree.leaves(g_live), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    return p_live, p_cached, state, tv, live_batch


def test_cached_teacher_step_equals_live_step_on_real_clips(cached_teacher, tmp_path):
    """Same clips, same start crops, no mixup: loss and gradients agree to float32 round-off
    (rtol 1e-5 on the loss terms, 1e-4 / atol 1e-6 on every gradient leaf: the teacher's logits
    were computed in batches of another composition, which reorders XLA's sums)."""
    live, cached = _kd_configs(cached_teacher)
    src = split_sources(cached, str(tmp_path))["train"]
    batch = next(
        iter(pipeline.train_dataset(src, clip_samples=8000, batch_size=8, seed=0, crop="start"))
    )
    assert batch[KEY].shape == (8, 10)
    p_live, p_cached, state, tv, live_batch = _assert_cached_step_equals_live(
        cached_teacher, live, cached, batch
    )
    assert [n.name for n in p_cached.nodes] == ["student"] and not p_cached.teachers
    assert load_teachers(cached, str(tmp_path)) == {}  # the cached teacher's checkpoint is not read
    # The jitted train step agrees too (loss metric and updated parameters).
    s_live, mm_live = jit_train_step(p_live)(
        copy.deepcopy(state), tv, live_batch, jax.random.key(3)
    )
    s_cached, mm_cached = jit_train_step(p_cached)(state, {}, batch, jax.random.key(3))
    np.testing.assert_allclose(float(mm_cached["loss"]), float(mm_live["loss"]), rtol=1e-5)
    for a, b in zip(jax.tree.leaves(s_cached.params), jax.tree.leaves(s_live.params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_cached_teacher_trains_end_to_end_and_rejects_random_crops(cached_teacher, tmp_path):
    live, cached = _kd_configs(cached_teacher, mixup=0.4)
    res = loop.train_and_evaluate(cached, str(tmp_path / "kd"))
    assert res["models"]["student"]["test"]["accuracy"] >= 0.0
    bad = copy.deepcopy(cached)
    with bad.unlocked():
        bad.data.train_crop = "random"
    with pytest.raises(ValueError, match="train_crop='random'"):
        split_sources(bad, str(tmp_path))
    for field, value, msg in (
        ("cached", {"logit": "x.npy"}, "cached.logit: expected"),
        ("cached", {"logits": 3}, "cached.logits=3"),
        ("cached_mixup_temperature", 0.0, "cached_mixup_temperature=0.0"),
    ):
        bad = copy.deepcopy(cached)
        with bad.unlocked():
            bad.teachers.teacher[field] = value
        with pytest.raises(ValueError, match=msg):
            build_program(bad, 10, 8000)
    bad = copy.deepcopy(cached)
    with bad.unlocked():
        bad.models.student.cached = {"logits": "x.npy"}
    with pytest.raises(ValueError, match="models.student.cached"):
        build_program(bad, 10, 8000)


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("multi_label", [False, True])
def test_mixup_mixes_cached_probabilities_with_the_audio_weights(multi_label):
    """NumPy reference: the mixing weights lambda_i and partners j(i) are read off the mixed audio
    (row i of the audio is the unit vector e_i), then p' = lambda p_i + (1 - lambda) p_j with
    p = softmax(z / T) (sigmoid for multi-label) and f' = lambda f_i + (1 - lambda) f_j."""
    b, c, t = 6, 5, 3.0
    cfg = _tiny("kd", mixup_alpha=0.8)
    with cfg.unlocked():
        cfg.teachers.teacher.cached = {"logits": "l.npy", "feats": {"embedding": "e.npy"}}
        cfg.teachers.teacher.cached_mixup_temperature = t
    prog = build_program(cfg, c, 8000, multi_label=multi_label)
    rng = np.random.default_rng(0)
    z = (4 * rng.standard_normal((b, c))).astype(np.float32)
    f = rng.standard_normal((b, 7)).astype(np.float32)
    labels = (
        (rng.random((b, c)) < 0.5).astype(np.float32)
        if multi_label
        else np.eye(c, dtype=np.float32)[np.arange(b) % c]
    )
    batch = {
        "audio": np.eye(b, 16, dtype=np.float32),
        "labels": labels,
        "mask": np.ones(b, np.float32),
        KEY: z,
        teacher_key("teacher", "feats.embedding"): f,
    }
    out = jax.device_get(mix(prog, batch, jax.random.key(5)))
    a = np.asarray(out["audio"], np.float64)
    lam = a[np.arange(b), np.arange(b)]
    part = np.where(lam < 1 - 1e-6, np.argmax(a - np.diag(lam) @ np.eye(b, 16), -1), np.arange(b))
    moved = lam < 1 - 1e-6
    assert moved.sum() >= 3  # the draw mixes most rows (the reference is not vacuous)
    mixed = lambda x: lam[:, None] * x + (1 - lam[:, None]) * x[part]  # noqa: E731
    z64 = z.astype(np.float64)
    if multi_label:
        p_ref, p_got = (
            mixed(1 / (1 + np.exp(-z64 / t))),
            1 / (1 + np.exp(-np.asarray(out[KEY], np.float64) / t)),
        )
    else:
        p_ref, p_got = mixed(_softmax(z64 / t)), _softmax(np.asarray(out[KEY], np.float64) / t)
    np.testing.assert_allclose(p_got, p_ref, rtol=2e-5, atol=1e-7)
    np.testing.assert_allclose(
        out[teacher_key("teacher", "feats.embedding")], mixed(f), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(out["labels"], mixed(labels), rtol=1e-5, atol=1e-6)
    # Other per-clip arrays are still refused under mixup.
    with pytest.raises(ValueError, match="per-clip arrays"):
        mix(prog, dict(batch, embedding=f), jax.random.key(5))


def test_mixup_cached_kd_loss_is_kd_to_the_mixed_teacher_probabilities():
    """kd_kl at the cache's temperature on the mixed cached logits = T^2 KL(p_mix || softmax(z_s/T))."""
    from kdjax import losses

    cfg = _tiny("kd", mixup_alpha=0.5)
    with cfg.unlocked():
        cfg.teachers.teacher.cached = {"logits": "l.npy"}
        cfg.teachers.teacher.cached_mixup_temperature = 4.0
    prog = build_program(cfg, 10, 8000)
    rng = np.random.default_rng(1)
    b = 8
    z_t = (3 * rng.standard_normal((b, 10))).astype(np.float32)
    z_s = rng.standard_normal((b, 10)).astype(np.float32)
    batch = {
        "audio": np.eye(b, 32, dtype=np.float32),
        "labels": np.eye(10, dtype=np.float32)[np.arange(b)],
        "mask": np.ones(b, np.float32),
        KEY: z_t,
    }
    out = jax.device_get(mix(prog, batch, jax.random.key(7)))
    a = np.asarray(out["audio"], np.float64)
    lam = a[np.arange(b), np.arange(b)]
    part = np.where(lam < 1 - 1e-6, np.argmax(a - np.diag(lam) @ np.eye(b, 32), -1), np.arange(b))
    p_mix = lam[:, None] * _softmax(z_t / 4.0) + (1 - lam[:, None]) * _softmax(z_t[part] / 4.0)
    q = _softmax(z_s.astype(np.float64) / 4.0)
    ref = 16.0 * (p_mix * (np.log(p_mix) - np.log(q))).sum(-1)
    got = losses.kd_kl(jnp.asarray(z_s), out[KEY], temperature=4.0)
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------------------------
# V fixed views per clip (cache.views, data.train_crop="views").

V = 3


@pytest.fixture(scope="module")
def view_cache(cached_teacher):
    """The cache stage of the same teacher on V fixed views of every train clip (crop offset and
    gain in [-6, 6] dB), the test split on the clips' starts."""
    views = dict(num=V, seed=7, gain_db=[-6.0, 6.0])
    c = _cache_stage(cached_teacher, splits=["train", "test"], views=views)
    run_config(c, str(cached_teacher / "views"))
    return cached_teacher / "views"


def _view_configs(root, views_dir):
    live, cached = _kd_configs(root)
    with cached.unlocked():
        cached.teachers.teacher.cached = {
            "logits": str(views_dir / "arrays" / "{split}" / "logits.npy")
        }
        cached.data.train_crop = "views"
        cached.data.views = str(views_dir / "arrays" / "{split}" / "views.npy")
    return live, cached


def test_views_are_keyed_by_clip_and_view_and_the_step_equals_the_live_step(
    cached_teacher, view_cache, tmp_path
):
    from kdjax.data.join import view_audio

    live, cached = _view_configs(cached_teacher, view_cache)
    src = split_sources(cached, str(tmp_path))["train"]
    raw = split_sources(live, str(tmp_path))["train"]
    views = np.load(view_cache / "arrays" / "train" / "views.npy")
    logits = np.load(view_cache / "arrays" / "train" / "logits.npy")
    assert views.shape == (len(src), V, 2) and logits.shape == (len(src), V, 10)
    offsets_vary = len(np.unique(views[..., 0])) > len(src)
    assert np.abs(views[..., 1]).max() <= 6.0 and offsets_vary
    test_logits = np.load(view_cache / "arrays" / "test" / "logits.npy")
    assert test_logits.ndim == 2  # other splits: the clips' starts
    ds = pipeline.train_dataset(src, clip_samples=8000, batch_size=8, seed=0, crop="views")
    batch = next(iter(ds))
    idx, v = batch["index"], batch["view"]
    np.testing.assert_array_equal(batch[KEY], logits[idx, v])  # rows keyed by (clip, view)
    for r in range(8):
        np.testing.assert_array_equal(
            batch["audio"][r], view_audio(raw[int(idx[r])]["audio"], 8000, views[idx[r], v[r]])
        )
    # The cached step on these views equals the live teacher's step on the same audio.
    _assert_cached_step_equals_live(cached_teacher, live, cached, batch)


def test_view_draws_vary_per_epoch_and_survive_resume(cached_teacher, view_cache, tmp_path):
    _, cached = _view_configs(cached_teacher, view_cache)
    src = split_sources(cached, str(tmp_path))["train"]

    def stream():
        return iter(
            pipeline.train_dataset(src, clip_samples=8000, batch_size=8, seed=1, crop="views")
        )

    it = stream()
    first = [next(it) for _ in range(3)]
    saved = it.get_state()
    rest = [next(it) for _ in range(3 * len(src) // 8)]
    again = stream()
    again.set_state(saved)
    for b, b2 in zip(rest, [next(again) for _ in rest], strict=True):
        for k in ("index", "view", "audio", KEY):
            np.testing.assert_array_equal(b[k], b2[k])
    drawn: dict[int, set] = {}
    for b in first + rest:
        for i, vv in zip(b["index"], b["view"], strict=True):
            drawn.setdefault(int(i), set()).add(int(vv))
    assert (
        max(len(s) for s in drawn.values()) > 1
    )  # a clip gets different views in different epochs
    # The loop runs on views end to end (cached teacher, no teacher checkpoint read).
    res = loop.train_and_evaluate(cached, str(tmp_path / "kd"))
    assert res["models"]["student"]["test"]["accuracy"] >= 0.0


def test_fsdd_teacher_cached_runs_teacher_cache_and_kd(data_dir, tmp_path):
    """configs/fsdd.py:teacher=cached (tiny): teacher -> cache (V views) -> KD from the cache; the
    default config is unchanged by the new arguments."""
    from configs import fsdd
    from kdjax.train.stages import run_stages

    assert fsdd.get_config("").to_dict() == fsdd.get_config("teacher=live,views=10").to_dict()
    cfg = fsdd.get_config("variant=tiny,seeds=1,teacher=cached,views=2,stage=teacher+cache+kd")
    with cfg.unlocked():
        for st in cfg.stages.values():
            for m in list(st.models.values()) + list(st.teachers.values()):
                m.kw = dict(TINY)
            st.data.kw.max_examples = 32
            st.quiet = True
    s = run_stages(cfg, str(tmp_path))
    assert set(s["stages"]) == {"teacher", "cache", "kd"}
    logits = np.load(tmp_path / "cache" / "arrays" / "train" / "logits.npy")
    assert logits.shape[1:] == (2, 10)
    kd = json.loads((tmp_path / "kd" / "seed0" / "result.json").read_text())
    assert kd["teacher_params"] == {} and np.isfinite(kd["models"]["student"]["test"]["accuracy"])
    with pytest.raises(ValueError, match="teacher='x'"):
        fsdd.get_config("teacher=x")
