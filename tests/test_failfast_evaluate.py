"""trendgym evaluate refuses what would fail after training before it starts, creating nothing."""

from __future__ import annotations

import pytest

from trendgym.train.cli import main

# extra argv -> words the one-line error must contain. Every row exits 2 before any training.
BAD_EVALUATE_INPUT = {
    "unknown env id": (["--env", "trendgym/Nope-v0"], ["--env", "'trendgym/Nope-v0'"]),
    "unknown env kwarg": (["--env-kwargs", '{"bogus": 1}'], ["--env-kwargs", "bogus"]),
    "zero folds": (["--folds", "0"], ["--folds must be >= 1, got 0"]),
    "zero seeds": (["--seeds", "0"], ["--seeds must be >= 1, got 0"]),
    "zero timesteps": (["--timesteps", "0"], ["--timesteps must be >= 1, got 0"]),
    "grid not a list of objects": (["--grid", "[1]"], ["--grid", "list of objects"]),
    "report folder read-only": (["--out", "/proc/trendgym-report"], ["--out", "read-only"]),
    "report folder is a file": (["--out", "{file}"], ["--out", "not a directory"]),
    "ledger in a read-only dir": (
        ["--ledger", "/proc/ledger.sqlite"],
        ["ledger '/proc/ledger.sqlite'", "read-only"],
    ),
    "ledger not SQLite": (["--ledger", "{file}"], ["not an SQLite database"]),
}


@pytest.mark.parametrize("case", list(BAD_EVALUATE_INPUT))
def test_bad_evaluate_input_is_one_line_exit_2_and_creates_nothing(case, tmp_path, capsys):
    extra, words = BAD_EVALUATE_INPUT[case]
    (tmp_path / "a_file").write_text("plain text, not a ledger or a folder")
    extra = [e.replace("{file}", str(tmp_path / "a_file")) for e in extra]
    argv = ["evaluate", "--env", "trendgym/Execution-v0", "--no-progress"]
    argv += ["--out", str(tmp_path / "report"), "--ledger", str(tmp_path / "ledger.sqlite")]
    with pytest.raises(SystemExit) as exit_:
        main(argv + extra)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # no report, no ledger
    assert (tmp_path / "a_file").read_text() == "plain text, not a ledger or a folder"
