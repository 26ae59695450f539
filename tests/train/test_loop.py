"""End-to-end training on real FSDD clips: stages, frozen teacher, resume, preemption, NaN."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from kdjax.train import loop
from kdjax.train.checkpoint import Checkpointer, load_best_variables
from kdjax.train.forward import init_variables
from kdjax.train.program import build_program
from kdjax.train.setup import data_source, make_optimizer
from tests.conftest import FAST_COMPILE
from tests.train.conftest import small

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tiny_main_job(stage: str = "all"):
    """configs/fsdd.py at variant=tiny (2 steps, its tiny teacher), 2 seeds, 32 clips per split
    (every 10th: ceil(300 / 32) = 10, so 30 of the 300 test clips)."""
    from configs import fsdd

    cfg = fsdd.get_config(f"variant=tiny,seeds=2,stage={stage}")
    with cfg.unlocked():
        for st in cfg.stages.values():
            st.data.kw.max_examples = 32
            st.batch_size = 8
            st.eval_batch_size = 16
            st.quiet = True
    return cfg


@pytest.fixture(scope="module")
def main_job(tmp_path_factory, data_dir):
    """The staged main job run once through `run_stages` for the tests that read it: the teacher
    stage alone first (its variables kept), then every stage (teacher skipped, student and kd x 2
    seeds). Returns (root, teacher variables after its stage, summary, {workdir: the dict
    train_and_evaluate returned})."""
    from kdjax.train import stages

    root = tmp_path_factory.mktemp("main")
    returned = {}

    def recording(cfg, wd, _train=stages.KINDS["train"]):
        returned[wd] = _train(cfg, wd)
        return returned[wd]

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(stages.KINDS, "train", recording)
        stages.run_stages(_tiny_main_job("teacher"), str(root))
        teacher = load_best_variables(root / "teacher", "teacher")
        summary = stages.run_stages(_tiny_main_job(), str(root))
    return root, teacher, summary, returned


@pytest.fixture(scope="module")
def teacher_dir(main_job):
    """The main job's teacher (shared by the KD tests)."""
    return main_job[0] / "teacher"


def _leaves_equal(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb, strict=True))


def test_every_stage_runs_and_teacher_stays_bit_identical(main_job):
    """The main job's student and kd runs (main_job: trained after the teacher was read)."""
    root, before, _, returned = main_job
    teacher_dir = root / "teacher"
    for stage in ("student", "kd"):
        wd = root / stage / "seed0"
        res = returned[str(wd)]
        r = json.loads((wd / "result.json").read_text())
        assert r["models"]["student"]["test"]["accuracy"] == res["models"]["student"]["test"]["accuracy"]
        assert 0.0 <= r["models"]["student"]["test"]["accuracy"] <= 1.0
        assert np.array(r["models"]["student"]["test"]["confusion_matrix"]).sum() == 30  # 300 test clips, stride ceil(300/32) = 10
        rows = [json.loads(line) for line in (wd / "metrics.jsonl").read_text().splitlines()]
        train_rows = [x for x in rows if "train/loss" in x]
        assert train_rows, "no train metrics logged"
        if stage == "kd":
            assert r["teacher_params"]["teacher"] > 10 * r["params"]["student"]
            # every weighted term is reported, and the total is their weighted sum
            x = train_rows[-1]
            assert {"train/loss/ce", "train/loss/kd"} <= set(x)
            assert np.isclose(x["train/loss"], 0.1 * x["train/loss/ce"] + 0.9 * x["train/loss/kd"], rtol=1e-5)
    assert _leaves_equal(before, load_best_variables(teacher_dir, "teacher"))


def test_train_step_leaves_teacher_variables_untouched(teacher_dir):
    """The step's teacher argument is neither donated nor modified."""
    import jax.numpy as jnp

    from kdjax.train.state import TrainState
    from kdjax.train.step import jit_train_step

    cfg = small("kd")
    prog = build_program(cfg, 10, 8000)
    params, stats = init_variables(prog, jax.random.key(0), 8000)
    tx, _ = make_optimizer(cfg)
    state = TrainState.create(params=params, batch_stats=stats, tx=tx)
    teachers = {"teacher": load_best_variables(teacher_dir, "teacher")}
    teachers = jax.tree.map(jnp.asarray, teachers)
    copy = jax.tree.map(np.array, teachers)
    batch = {"audio": jax.random.normal(jax.random.key(1), (8, 8000)) * 0.1,
             "labels": jax.nn.one_hot(jnp.arange(8) % 10, 10), "mask": jnp.ones(8)}
    step = jit_train_step(prog)
    for _ in range(2):
        state, m = step(state, teachers, batch, jax.random.key(2))
    assert _leaves_equal(copy, teachers)
    assert int(state.step) == 2 and np.isfinite(float(m["loss"]))


def test_stages_summary_and_skip(main_job):
    """A staged config writes summary.json with mean/std over seeds and the KD gain (main_job:
    the run_stages call that trained the student and kd seeds)."""
    from kdjax.train.stages import run_stages

    tmp_path, _, s, _ = main_job
    cfg = _tiny_main_job()
    assert set(s["stages"]) == {"teacher", "student", "kd"}
    assert len(s["stages"]["teacher"]["runs"]) == 1 and len(s["stages"]["kd"]["runs"]) == 2
    kd, st = s["stages"]["kd"], s["stages"]["student"]
    tests = [r["test"] for r in kd["runs"]]
    assert np.isclose(kd["test_mean"], np.mean(tests)) and np.isclose(kd["test_std"], np.std(tests, ddof=1))
    assert np.isclose(kd["gain_over_student"], kd["test_mean"] - st["test_mean"])
    assert json.loads((tmp_path / "summary.json").read_text())["stages"]["kd"]["test_mean"] == kd["test_mean"]
    # A second call finds every result.json and trains nothing.
    mtime = os.path.getmtime(tmp_path / "kd" / "seed1" / "result.json")
    run_stages(cfg, str(tmp_path))
    assert os.path.getmtime(tmp_path / "kd" / "seed1" / "result.json") == mtime


def _restore(ckpt_dir, step):
    import orbax.checkpoint as ocp

    args = ocp.args.Composite(state=ocp.args.StandardRestore(), best=ocp.args.StandardRestore(),
                              meta=ocp.args.JsonRestore())
    return Checkpointer(ckpt_dir).manager.restore(step, args=args)


class _Killed(BaseException):
    pass


def test_resume_after_interruption_equals_uninterrupted(tmp_path, data_dir, monkeypatch):
    """Dying right after the step-4 checkpoint and re-running gives bit-identical params and results."""
    cfg = small("student", steps=6)
    full = loop.train_and_evaluate(cfg, str(tmp_path / "full"))
    save = Checkpointer.save

    def save_then_die(self, step, *a, **kw):
        save(self, step, *a, **kw)
        if step == 4:
            self.wait()
            raise _Killed()

    monkeypatch.setattr(Checkpointer, "save", save_then_die)
    with pytest.raises(_Killed):
        loop.train_and_evaluate(cfg, str(tmp_path / "part"))
    monkeypatch.setattr(Checkpointer, "save", save)
    assert not (tmp_path / "part" / "result.json").exists()
    resumed = loop.train_and_evaluate(cfg, str(tmp_path / "part"))
    for split in ("validation", "test"):
        assert resumed["models"]["student"][split] == full["models"]["student"][split]
    ra, rb = _restore(tmp_path / "full" / "ckpt", 6), _restore(tmp_path / "part" / "ckpt", 6)
    assert _leaves_equal(ra.state, rb.state)
    assert _leaves_equal(ra.best, rb.best)
    assert ra.meta["data_iterator"] == rb.meta["data_iterator"]


def _main_cmd(workdir, *extra):
    return [sys.executable, "-m", "kdjax.main", "--config", "configs/fsdd.py:stage=student,seeds=1",
            "--workdir", str(workdir), "--config.stages.student.quiet=True",
            "--config.stages.student.batch_size=8", "--config.stages.student.eval_batch_size=16",
            "--config.stages.student.data.kw.max_examples=64", *extra]


def _wait_for_checkpoint(ckpt_dir, proc, timeout=240):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if os.path.isdir(ckpt_dir) and any(d.isdigit() for d in os.listdir(ckpt_dir)):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.2)
    return False


@pytest.mark.slow
def test_sigkill_then_rerun_same_command_gives_same_summary(tmp_path, data_dir, subprocess_compile_cache):
    """The killed and the rerun process load the reference run's programs from a private compile
    cache (one device each; the cache is not what is tested here)."""
    extra = ["--config.stages.student.num_steps=30", "--config.stages.student.checkpoint_every=10",
             "--config.stages.student.eval_every=10"]
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=FAST_COMPILE)
    ref = subprocess.run(_main_cmd(tmp_path / "ref", *extra), cwd=REPO, env=env, capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr[-2000:]
    wd = tmp_path / "killed"
    p = subprocess.Popen(_main_cmd(wd, *extra), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert _wait_for_checkpoint(wd / "student" / "seed0" / "ckpt", p)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (wd / "student" / "seed0" / "result.json").exists(), "killed too late to test resumption"
    again = subprocess.run(_main_cmd(wd, *extra), cwd=REPO, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resumed from" in again.stdout
    s_ref = json.loads((tmp_path / "ref" / "summary.json").read_text())["stages"]["student"]
    s_new = json.loads((wd / "summary.json").read_text())["stages"]["student"]
    for k in ("test_mean", "test_std"):
        assert s_new[k] == s_ref[k]
    assert [r["test"] for r in s_new["runs"]] == [r["test"] for r in s_ref["runs"]]
    assert [r["validation"] for r in s_new["runs"]] == [r["validation"] for r in s_ref["runs"]]


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_before_exit(tmp_path, data_dir):
    extra = ["--config.stages.student.num_steps=100000", "--config.stages.student.checkpoint_every=7",
             "--config.stages.student.eval_every=100000"]
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=FAST_COMPILE)
    wd = tmp_path / "pre"
    ckpt_dir = wd / "student" / "seed0" / "ckpt"
    p = subprocess.Popen(_main_cmd(wd, *extra), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert _wait_for_checkpoint(ckpt_dir, p)
    time.sleep(1.0)  # a few more steps, so the SIGTERM step is not a multiple of 7
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143, err[-2000:]
    assert "SIGTERM: saved checkpoint" in err
    saved = Checkpointer(ckpt_dir).latest_step()
    meta = json.loads((ckpt_dir / str(saved) / "meta" / "metadata").read_text())
    assert meta["step"] == saved and saved > 0


def test_tfds_format_feeds_the_same_batches_as_files(tmp_path, data_dir):
    """data.format="tfds": the ArrayRecord copy read via tfds.data_source gives the same grain batches."""
    from kdjax.data import pipeline

    d = small("student").data
    with d.unlocked():
        d.kw.max_examples = 0
        d.tfds_dir = str(tmp_path / "tfds")
    files = data_source(d, "test")
    with d.unlocked():
        d.format = "tfds"
    tfds_src = data_source(d, "test")
    assert len(tfds_src) == len(files) == 300 and tfds_src.sample_rate == 8000
    assert (tmp_path / "tfds" / "kdjax_fsdd").is_dir()
    kw = dict(clip_samples=8000, batch_size=16, seed=3)
    a = next(iter(pipeline.train_dataset(files, **kw)))
    b = next(iter(pipeline.train_dataset(tfds_src, **kw)))
    for k in ("audio", "labels", "label_mask", "index"):
        np.testing.assert_array_equal(a[k], b[k])
    with d.unlocked():
        d.format = "tfrecord"
    with pytest.raises(ValueError, match="data.format='tfrecord'"):
        data_source(d, "test")
