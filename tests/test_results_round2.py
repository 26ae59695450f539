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


def test_deadline_time_rolls_past_midnight_and_rejects_bad_input():
    day = 20_000 * 86400.0  # a UTC midnight
    at_2300 = day + 23 * 3600
    # 00:55 named at 23:00 is the next day's 00:55 (the bug: a string compare stopped at once).
    assert round2.deadline_time("00:55", at_2300) == day + 86400 + 55 * 60
    assert round2.deadline_time("23:30", at_2300) == day + 23.5 * 3600
    # The current minute has passed already; it is not pushed to tomorrow.
    assert round2.deadline_time("23:00", at_2300 + 30) == at_2300
    for bad in ("25:00", "12:60", "noon", "12"):
        with pytest.raises(ValueError, match="HH:MM"):
            round2.deadline_time(bad, at_2300)


def test_run_refuses_to_start_after_stop_at_and_logs_it(tmp_path):
    log = tmp_path / "run.log"
    with pytest.raises(round2.Deadline):
        round2.run(log, ["python", "-m", "x", "--flag"], stop_at=0.0)  # 1970: long passed
    assert "deadline 00:00 UTC passed: not starting --flag" in log.read_text()
    round2.run(log, ["true", "a", "b", "c"], stop_at=2e10)  # year 2603: runs
    assert "done in" in log.read_text()
