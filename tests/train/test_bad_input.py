"""Bad input gives one-line errors naming the file/key and what was expected; nothing good is lost."""

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from kdjax.data import AudioError, DatasetNotFoundError, fsdd, load_audio
from kdjax.train import loop
from kdjax.train.checkpoint import Checkpointer
from kdjax.train.setup import TrainingDivergedError
from tests.conftest import FAST_COMPILE
from tests.train.conftest import small

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _main(*args, env=None):
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=FAST_COMPILE, **(env or {}))
    return subprocess.run([sys.executable, "-m", "kdjax.main", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def _one_line_error(proc):
    """The process failed with exactly one `kdjax: error:` line and no traceback."""
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [x for x in proc.stderr.splitlines() if x.startswith("kdjax: error:")]
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


@pytest.fixture
def fake_fsdd(tmp_path):
    """A FSDD-layout folder with valid 8 kHz clips for every digit."""
    d = tmp_path / "fsdd" / "audio"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for digit in range(10):
        for take in range(50):
            sf.write(d / f"{digit}_alice_{take}.wav", 0.1 * rng.standard_normal(800).astype(np.float32), 8000)
    return tmp_path


def test_missing_dataset_names_the_expected_path(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "fsdd" / "audio")):
        fsdd.source("train", data_dir=tmp_path, allow_download=False)


def test_failed_download_says_where_to_put_the_files(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="put the recordings") as e:
        fsdd.download(tmp_path / "fsdd", url=f"file://{tmp_path}/no-such-archive.tar.gz")
    assert str(tmp_path / "fsdd" / "audio") in str(e.value)
    assert not (tmp_path / "fsdd" / "audio").exists()  # no half-written dataset left behind


def test_main_missing_dataset_is_one_line(tmp_path):
    p = _main("--config", "configs/fsdd.py:stage=student,seeds=1", "--workdir", str(tmp_path / "w"),
              "--config.stages.student.data.kw.allow_download=False", env={"KDJAX_DATA_DIR": str(tmp_path)})
    line = _one_line_error(p)
    assert "FSDD not found" in line and str(tmp_path / "fsdd" / "audio") in line


@pytest.mark.parametrize("case", ["corrupt", "empty", "rate"])
def test_bad_audio_file_names_the_file(fake_fsdd, case):
    path = fake_fsdd / "fsdd" / "audio" / "3_alice_20.wav"
    if case == "corrupt":
        path.write_bytes(b"RIFF\x00\x00garbage, not audio")
        expect = "cannot decode audio"
    elif case == "empty":
        sf.write(path, np.zeros(0, np.float32), 8000)
        expect = "audio is empty"
    else:
        sf.write(path, np.zeros(16000, np.float32), 16000)
        expect = "sample rate is 16000 Hz, expected 8000 Hz"
    with pytest.raises(AudioError, match=expect) as e:
        load_audio(path, expected_sr=8000)
    assert str(path) in str(e.value)
    src = fsdd.source("train", data_dir=fake_fsdd, allow_download=False)
    with pytest.raises(AudioError, match=expect):
        [src[i] for i in range(len(src))]


def test_main_bad_audio_is_one_line(fake_fsdd, tmp_path):
    bad = fake_fsdd / "fsdd" / "audio" / "3_alice_20.wav"
    sf.write(bad, np.zeros(8000, np.float32), 16000)
    p = _main("--config", "configs/fsdd.py:stage=student,seeds=1", "--workdir", str(tmp_path / "w"),
              "--config.stages.student.data.kw.allow_download=False", env={"KDJAX_DATA_DIR": str(fake_fsdd)})
    line = _one_line_error(p)
    assert str(bad) in line and "expected 8000 Hz" in line


@pytest.mark.parametrize("args, expect", [
    (["--config.stages.student.nonexistent=1"], "unknown config key 'stages.student.nonexistent'"),
    (["--config.stages.nope.num_steps=1"], "stages has no field 'nope'"),
])
def test_unknown_config_key_is_one_line(tmp_path, args, expect):
    p = _main("--config", "configs/fsdd.py", "--workdir", str(tmp_path), *args)
    assert p.returncode == 2
    assert expect in _one_line_error(p)
    assert not os.listdir(tmp_path)  # nothing ran


def test_unknown_config_argument_is_one_line(tmp_path):
    p = _main("--config", "configs/fsdd.py:bogus=1", "--workdir", str(tmp_path))
    assert "config argument 'bogus' unknown" in _one_line_error(p)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, data_dir):
    wd = str(tmp_path / "run")
    loop.train_and_evaluate(small("student", steps=4), wd)
    os.remove(os.path.join(wd, "result.json"))
    ckpt_dir = os.path.join(wd, "ckpt")
    before = {f: os.path.getmtime(os.path.join(r, f)) for r, _, fs in os.walk(ckpt_dir) for f in fs}
    cfg = small("student", steps=8)
    with cfg.unlocked():
        cfg.losses.ce.weight = float("nan")
    with pytest.raises(TrainingDivergedError, match="loss is nan at step 5") as e:
        loop.train_and_evaluate(cfg, wd)
    assert f"{ckpt_dir}/4" in str(e.value)
    assert Checkpointer(ckpt_dir).latest_step() == 4
    after = {f: os.path.getmtime(os.path.join(r, f)) for r, _, fs in os.walk(ckpt_dir) for f in fs}
    assert after == before  # the good checkpoint was neither overwritten nor removed
