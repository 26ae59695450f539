"""Data-test fixtures: a small "your own data" corpus built from real FSDD clips."""

import shutil

import pytest

DIGITS, SPEAKERS, TAKES = (0, 1, 2, 3), ("george", "jackson", "lucas"), range(5)
WORDS = ("zero", "one", "two", "three")


@pytest.fixture
def corpus(tmp_path, data_dir):
    """60 real FSDD clips (4 digits x 3 speakers x 5 takes, 8 kHz) in `<root>/audio/`, and two
    CSVs: `labels.csv` (columns file, word, set; take 0 = test, the rest = train; no
    validation split) and `all.csv` (file, word: one list). Copies live under tmp_path only."""
    root = tmp_path / "corpus"
    (root / "audio").mkdir(parents=True)
    split_rows, all_rows = ["file,word,set"], ["file,word"]
    for d in DIGITS:
        for spk in SPEAKERS:
            for take in TAKES:
                name = f"{d}_{spk}_{take}.flac"
                shutil.copy(data_dir / "fsdd" / "audio" / name, root / "audio" / name)
                split_rows.append(f"{name},{WORDS[d]},{'test' if take == 0 else 'train'}")
                all_rows.append(f"{name},{WORDS[d]}")
    (root / "labels.csv").write_text("\n".join(split_rows) + "\n")
    (root / "all.csv").write_text("\n".join(all_rows) + "\n")
    return root
