"""configs/results/round2.py: the drivers' shared per-run file copy."""

import pytest

from configs.results import round2


def test_copy_files_copies_present_files_and_skips_or_refuses_missing_ones(tmp_path):
    src, dst = tmp_path / "run", tmp_path / "out" / "arm" / "seed0"
    src.mkdir()
    (src / "result.json").write_text('{"a": 1}')
    (src / "metrics.jsonl").write_bytes(b"\x00\x01line\n")
    round2.copy_files(src, dst, ("result.json", "metrics.jsonl", "logits_validation.npz"))
    assert (dst / "result.json").read_text() == '{"a": 1}'
    assert (dst / "metrics.jsonl").read_bytes() == b"\x00\x01line\n"
    assert not (dst / "logits_validation.npz").exists()
    dst2 = tmp_path / "strict"
    with pytest.raises(FileNotFoundError, match="logits_validation.npz"):
        round2.copy_files(src, dst2, ("result.json", "logits_validation.npz"), required=True)
    assert not dst2.exists()  # nothing half-copied
