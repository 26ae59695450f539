"""configs/iusp.py `teacher=cached` (issue #22): the IUSP `local` variant's student stages read
the teacher's outputs from a cache stage instead of running the frozen teacher in every step.

The live `local` student stages draw random crops of `clip_seconds` from mixtures that are
exactly `clip_seconds` long (sc_mix: 3 s; esc10_mix: 5 s), run the teacher in eval mode, and
use no mixup, so the crop is the whole clip and the teacher's outputs are a function of the
clip. Here the tiny variant on real sc_mix mixtures is set to the local setting (clip_seconds =
the mixture length, 3 s; tiny's own 2 s crops are not that setting) and, for every arm that
reads the teacher (kd: logits; sp: `feats.embedding` or, with `sp_feat=frames`, `feats.frames`;
iusp: `feats.frames`), the cached-teacher step on the cached stage's batch equals the
live-teacher step on the live stage's batch (random crop): same audio, same loss terms (rtol
1e-5), same gradients (rtol 1e-4, atol 1e-6: the cache stage ran the teacher on batches of
another composition, which reorders XLA's sums), as tests/train/test_offline_kd.py checks for
the FSDD KD step.
"""

import copy
import json

import jax
import numpy as np
import pytest

from configs import iusp
from kdjax.data import pipeline
from kdjax.data.join import teacher_key
from kdjax.train.forward import init_variables
from kdjax.train.setup import StageContext, make_optimizer, split_sources
from kdjax.train.stage_list import stage_runs
from kdjax.train.stages import run_config
from kdjax.train.state import TrainState
from kdjax.train.step import loss_and_grads

MIX_SECONDS = 3.0  # sc_mix mixtures (duration_s=3): the local variant's clip_seconds
STAGES = "teacher+kd_small+sp_small+iusp_small"


def _config(teacher: str, **args: str):
    """The tiny IUSP config on sc_mix at the local setting (whole-mixture clips), with
    `teacher=live|cached` and further config arguments."""
    extra = "".join(f",{k}={v}" for k, v in args.items())
    c = iusp.get_config(f"variant=tiny,data=sc_mix,teacher={teacher},stage={STAGES}{extra}")
    with c.unlocked():
        for st in c.stages.values():
            st.data.clip_seconds = MIX_SECONDS
    return c


def _resolved(cfg, root) -> dict:
    """{stage: its config with the stage references resolved against `root`}."""
    return {name: c for name, _, _, c in stage_runs(cfg, str(root))}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
    """A tiny IUSP teacher (2 steps) and the cache stage of its outputs on every split."""
    root = tmp_path_factory.mktemp("iusp_cached")
    stages = _resolved(_config("cached"), root)
    assert list(stages)[:2] == ["teacher", "cache"]
    run_config(stages["teacher"], str(root / "teacher"))
    run_config(stages["cache"], str(root / "cache"))
    return root


def _batch(ctx: StageContext) -> dict:
    """The stage's first train batch, as the loop draws it (its own `train_crop`)."""
    ds = pipeline.train_dataset(
        ctx.sources["train"],
        clip_samples=ctx.clip_samples,
        batch_size=ctx.cfg.batch_size,
        seed=ctx.cfg.seed,
        crop=ctx.cfg.data.get("train_crop", "random"),
    )
    return next(iter(ds))


@pytest.mark.parametrize(
    "stage,args,terms",
    [
        ("kd_small", {}, ("kd",)),
        ("sp_small", {}, ("kd", "sp")),
        ("sp_small", {"sp_feat": "frames"}, ("kd", "sp")),
        ("iusp_small", {}, ("kd", "iusp")),
    ],
)
def test_cached_teacher_step_equals_live_step(trained, tmp_path, stage, args, terms):
    live_cfg = _resolved(_config("live", **args), trained)[stage]
    cached_cfg = _resolved(_config("cached", **args), trained)[stage]
    assert live_cfg.data.train_crop == "random"  # as the live local stages
    assert cached_cfg.data.train_crop == "start"
    live = StageContext.build(live_cfg, str(tmp_path / "live"))
    cached = StageContext.build(cached_cfg, str(tmp_path / "cached"))
    assert live.clip_samples == cached.clip_samples == 48000
    assert [n.name for n in cached.program.nodes] == ["student"] and cached.teachers == {}
    assert set(live.teachers) == {"teacher"}

    b_live, b_cached = _batch(live), _batch(cached)
    keys = {teacher_key("teacher", "logits")} | {
        teacher_key("teacher", f"feats.{f}")
        for f in cached_cfg.teachers.teacher.cached.get("feats", {})
    }
    assert set(b_cached) - set(b_live) == keys
    for k in ("audio", "labels", "index"):  # the random crop of a whole mixture is the mixture
        np.testing.assert_array_equal(b_cached[k], b_live[k], err_msg=k)

    params, stats = init_variables(
        live.program, jax.random.key(0), live.clip_samples, live.teachers
    )
    tx, _ = make_optimizer(live_cfg)
    state = TrainState.create(params=params, batch_stats=stats, tx=tx)
    rng = jax.random.key(3)
    g_live, m_live, _ = jax.jit(lambda s, t, b: loss_and_grads(s, t, b, rng, program=live.program))(
        state, live.teachers, b_live
    )
    g_cached, m_cached, _ = jax.jit(
        lambda s, b: loss_and_grads(s, {}, b, rng, program=cached.program)
    )(copy.deepcopy(state), b_cached)
    for t in terms:
        assert float(m_live[f"loss/{t}"]) > 1e-6, t  # the teacher term is not trivially zero
    for k in ("loss", "loss/bce", *(f"loss/{t}" for t in terms)):
        np.testing.assert_allclose(float(m_cached[k]), float(m_live[k]), rtol=1e-5, err_msg=k)
    for a, b in zip(jax.tree.leaves(g_cached), jax.tree.leaves(g_live), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_config_teacher_argument():
    """`local` defaults to cached; paper and tiny stay live; cached changes only the cache stage,
    the student stages' teacher/crop fields and the run list."""
    for data in iusp.VARIANTS["local"]:
        live = iusp.get_config(f"variant=local,data={data},teacher=live").to_dict()
        cached = iusp.get_config(f"variant=local,data={data}").to_dict()
        assert cached == iusp.get_config(f"variant=local,data={data},teacher=cached").to_dict()
        assert set(cached["stages"]) - set(live["stages"]) == {"cache"}
        assert cached["run"].split(",") == ["teacher", "cache"] + live["run"].split(",")[1:]
        for name, st in live["stages"].items():
            c = copy.deepcopy(cached["stages"][name])
            if name.startswith(("kd_", "sp_", "iusp_")):
                assert (c["data"]["train_crop"], st["data"]["train_crop"]) == ("start", "random")
                c["data"]["train_crop"] = "random"
                assert "cached" in c["teachers"]["teacher"]
                c["teachers"]["teacher"].pop("cached")
            assert json.dumps(c, sort_keys=True) == json.dumps(st, sort_keys=True), name
        # local's round-2 default sp_feat=frames: SP and IUSP read the same cached frames
        assert cached["stages"]["cache"]["cache"]["outputs"] == {
            "logits": "teacher.teacher.logits",
            "frames": "teacher.teacher.feats.frames",
        }
        emb = iusp.get_config(f"variant=local,data={data},sp_feat=embedding").stages.cache
        assert set(emb.cache.outputs) == {"logits", "embedding", "frames"}
    for v in ("paper", "tiny"):
        assert (
            iusp.get_config(f"variant={v}").to_dict()
            == iusp.get_config(f"variant={v},teacher=live").to_dict()
        )
    # An explicit stage list gets the cache stage before the first stage that reads it.
    assert iusp.get_config("variant=local,stage=teacher+bce_small+iusp_small").run == (
        "teacher,bce_small,cache,iusp_small"
    )
    assert iusp.get_config("variant=local,stage=bce_small").run == "bce_small"
    t = iusp.get_config("variant=local,iusp_teacher_layer=fmap0,sp_feat=frames").stages
    assert set(t.cache.cache.outputs) == {"logits", "frames", "fmap0"}
    assert dict(t.iusp_small.teachers.teacher.cached.feats) == {
        "fmap0": "{stage:cache}/arrays/{split}/fmap0.npy"
    }
    with pytest.raises(ValueError, match="teacher='x'"):
        iusp.get_config("variant=local,teacher=x")


@pytest.mark.parametrize("data", iusp.VARIANTS["local"])
def test_local_mixtures_are_whole_clips_and_fixed(data_dir, tmp_path, data):
    """The premise of the local default: every clip of every split of the local variant is
    exactly `clip_seconds` long (so the live random crop is the whole clip) and a clip reads the
    same every time (so the cached outputs are those of every epoch's input)."""
    st = iusp.get_config(f"variant=local,data={data},teacher=live").stages.iusp_small
    n = round(st.data.clip_seconds * 16000)
    for role, src in split_sources(st, str(tmp_path)).items():
        lengths = {src[i]["audio"].shape[0] for i in range(len(src))}
        assert lengths == {n}, (role, lengths)
        for i in (0, len(src) - 1):
            np.testing.assert_array_equal(src[i]["audio"], src[i]["audio"])
