"""The prepare CLI: counts per split/class, TFDS build, one-line error on a missing archive."""

import os
import subprocess
import sys

from tests.conftest import REPO


def _run(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "kdjax.data.prepare", *args], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=120)


def test_prepare_builds_and_counts(data_dir, tmp_path):
    r = _run("--dataset", "fsdd", "--source", str(data_dir), "--splits", "test", "--tfds_dir", str(tmp_path),
             "--audio_dtype", "int16")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "fsdd/test: 300 clips, 10 classes, 8000 Hz" in r.stdout
    assert r.stdout.count(" 30\n") == 10  # 30 clips per digit
    assert (tmp_path / "kdjax_fsdd" / "test" / "1.0.0" / "dataset_info.json").is_file()


def test_prepare_missing_archive(tmp_path):
    r = _run("--dataset", "esc50", "--source", str(tmp_path))
    assert r.returncode == 1
    err = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "esc50.csv" in err[0] and "github.com/karolpiczak/ESC-50" in err[0]
