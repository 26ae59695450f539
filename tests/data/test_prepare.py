"""The prepare CLI: counts per split/class, TFDS build, one-line error on a missing archive."""

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REPO


def _run(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "kdjax.data.prepare", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )


def test_prepare_builds_and_counts(data_dir, tmp_path):
    r = _run(
        "--dataset",
        "fsdd",
        "--source",
        str(data_dir),
        "--splits",
        "test",
        "--tfds_dir",
        str(tmp_path),
        "--audio_dtype",
        "int16",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "fsdd/test: 300 clips, 10 classes, 8000 Hz" in r.stdout
    assert r.stdout.count(" 30\n") == 10  # 30 clips per digit
    assert (tmp_path / "kdjax_fsdd" / "test" / "1.0.0" / "dataset_info.json").is_file()


def test_prepare_missing_archive(tmp_path):
    r = _run("--dataset", "esc50", "--source", str(tmp_path))
    assert r.returncode == 1
    err = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "esc50.csv" in err[0] and "github.com/karolpiczak/ESC-50" in err[0]


FOLDER_KW = "csv=labels.csv,audio_dir=audio,path_column=file,label_column=word,split_column=set,sample_rate=8000"


def _errors(r):
    return [line for line in r.stderr.splitlines() if line.strip()]


def test_prepare_folder_source_default_splits(corpus):
    # --source is the corpus folder; the default splits are train/validation/test (validation
    # carved from the CSV's train rows)
    r = _run("--dataset", "folder", "--source", str(corpus), "--kw", FOLDER_KW)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "folder/train: 43 clips, 4 classes, 8000 Hz" in r.stdout
    assert "folder/validation: 5 clips, 4 classes, 8000 Hz" in r.stdout
    assert "folder/test: 12 clips, 4 classes, 8000 Hz" in r.stdout
    assert "decoded 60 audio files, all good" in r.stdout


def test_prepare_folder_default_splits_are_the_folds(corpus):
    lines = (corpus / "labels.csv").read_text().splitlines()
    rows = [f"{line},{1 + k % 3}" for k, line in enumerate(lines[1:])]
    (corpus / "folds.csv").write_text("\n".join([lines[0] + ",fold"] + rows) + "\n")
    kw = "csv=folds.csv,audio_dir=audio,path_column=file,label_column=word,fold_column=fold,sample_rate=8000"
    r = _run("--dataset", "folder", "--source", str(corpus), "--kw", kw)
    assert r.returncode == 0, r.stderr[-2000:]
    assert [line.split(":")[0] for line in r.stdout.splitlines() if line.startswith("folder/")] == [
        "folder/fold1",
        "folder/fold2",
        "folder/fold3",
    ]


def test_prepare_folder_reports_every_bad_file(corpus):
    audio = corpus / "audio"
    wave, _ = sf.read(audio / "1_jackson_2.flac", dtype="float32")
    cut = audio / "1_jackson_2.wav"  # a truncated WAV: the header declares more frames
    sf.write(cut, wave, 8000, subtype="PCM_16")
    (audio / "1_jackson_2.flac").unlink()
    with open(cut, "r+b") as f:
        f.truncate(cut.stat().st_size - 200)
    sf.write(audio / "2_lucas_3.flac", np.repeat(wave, 2), 16000)  # another sample rate
    (audio / "3_george_0.flac").write_bytes(b"fLaC not really")  # corrupt
    r = _run("--dataset", "folder", "--source", str(corpus), "--kw", FOLDER_KW)
    assert r.returncode == 1
    bad = [line for line in _errors(r) if line.startswith("bad audio:")]
    assert len(bad) == 3, r.stderr
    assert any(str(cut) in b and "declares" in b for b in bad)
    assert any(str(audio / "2_lucas_3.flac") in b and "16000 Hz" in b for b in bad)
    assert any(str(audio / "3_george_0.flac") in b and "cannot decode" in b for b in bad)
    assert _errors(r)[-1] == "error: 3 of 60 audio files are bad (listed above)"


@pytest.mark.parametrize("case", ["no_root", "no_csv", "no_rate"])
def test_prepare_folder_errors_are_one_line(corpus, tmp_path, case):
    source, kw = str(corpus), FOLDER_KW
    if case == "no_root":
        source, expect = str(tmp_path / "nowhere"), f"root {tmp_path / 'nowhere'} not found"
    elif case == "no_csv":
        kw, expect = kw.replace("labels.csv", "missing.csv"), str(corpus / "missing.csv")
    else:
        kw, expect = (
            kw.replace(",sample_rate=8000", ""),
            "missing required keyword(s) ['sample_rate']",
        )
    r = _run("--dataset", "folder", "--source", source, "--kw", kw)
    assert r.returncode == 1
    assert (
        len(_errors(r)) == 1 and _errors(r)[0].startswith("error:") and expect in _errors(r)[0]
    ), r.stderr
