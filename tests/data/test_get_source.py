"""`get_source`: finding a dataset module, and one-line errors for wrong `data.kw` keywords."""

import os
import subprocess
import sys

import pytest

from kdjax.data import get_source
from tests.conftest import REPO


def test_unknown_keyword_names_key_and_valid_keywords(tmp_path):
    # FSDD's allow_download left in data.kw after switching to data.name=folder
    with pytest.raises(ValueError) as e:
        get_source("folder", "train", root=tmp_path, allow_download=True)
    msg = str(e.value)
    assert "\n" not in msg
    assert "'allow_download'" in msg and "data.name='folder'" in msg
    for kw in ("root", "csv", "sample_rate", "audio_dir", "val_fraction"):
        assert f"'{kw}'" in msg, msg
    with pytest.raises(ValueError, match=r"'root'.*valid keywords.*'allow_download'.*'data_dir'"):
        get_source("fsdd", "test", root=tmp_path)


def test_no_such_module():
    with pytest.raises(ValueError, match="no dataset module kdjax/data/nope.py"):
        get_source("nope", "train")


def test_main_wrong_data_kw_is_one_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "kdjax.main",
            "--config",
            "configs/fsdd.py:stage=teacher",
            "--workdir",
            str(tmp_path / "w"),
            "--config.stages.teacher.data.name=folder",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert p.returncode == 1, p.stderr[-3000:]
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, p.stderr[-3000:]
    assert "'allow_download'" in lines[0] and "'root'" in lines[0]
