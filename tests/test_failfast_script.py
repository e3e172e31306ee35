"""``evaluate_agent`` from a script without ``if __name__ == "__main__":``: worker processes
would import the script again (BrokenProcessPool), so the trials run in the script's process,
with a warning that says what to add."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TINY = {"n_steps": 64, "batch_size": 32, "n_epochs": 1, "policy_kwargs": {"net_arch": [8]}}


def _run(script: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    (cwd / "script.py").write_text(textwrap.dedent(script))
    return subprocess.run(
        [sys.executable, "script.py"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def test_evaluate_agent_runs_from_a_script_without_a_main_guard(tmp_path):
    done = _run(
        f"""
        from trendgym.evaluate import evaluate_agent

        report = evaluate_agent(
            "trendgym/Execution-v0", "ppo", out_dir="report", ledger="l.sqlite", workers=2,
            n_folds=2, seeds=(0, 1), timesteps=128, episodes=4, env_kwargs={{"horizon": 10}},
            model_kwargs={TINY!r}, extractor=None, placebo=False, progress=False,
        )
        print("verdict:", report.assessment.verdict.status)
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "BrokenProcessPool" not in done.stderr and "Traceback" not in done.stderr
    assert "verdict: " in done.stdout
    assert done.stdout.count("verdict: ") == 1  # the script ran once, not again per worker
    assert "RuntimeWarning" in done.stderr and "script.py" in done.stderr
    assert 'outside an `if __name__ == "__main__":` block' in done.stderr
    assert "put the call under that guard" in done.stderr
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    assert results["dsr"]["n_trials"] == 2


PROBE = "from trendgym.evaluate.walkforward.backends import unguarded_main_script\n"


@pytest.mark.parametrize(
    "body,unguarded",
    [
        ("print(unguarded_main_script())", True),
        ("def main():\n    print(unguarded_main_script())\n\nmain()", True),
        ('if __name__ == "__main__":\n    print(unguarded_main_script())', False),
        (
            "def main():\n    print(unguarded_main_script())\n\n"
            "if '__main__' == __name__:\n    main()",
            False,
        ),
    ],
    ids=["top-level", "function-at-top-level", "guarded", "guarded-reversed"],
)
def test_the_main_guard_is_recognised(tmp_path, body, unguarded):
    done = _run(PROBE + body, tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    printed = done.stdout.strip()
    assert printed == (str(tmp_path / "script.py") if unguarded else "None")


def test_python_dash_c_is_not_a_script(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", PROBE + "print(unguarded_main_script())"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.strip() == "None", done.stderr
