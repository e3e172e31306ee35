"""`trendgym.compile`: the warm-up step and the compile announcements (never a silent wait)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from trendgym import compile as tg_compile


def _run(args: list[str]) -> subprocess.CompletedProcess:
    out = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_a_compile_is_announced_on_stderr_and_a_loaded_kernel_is_not():
    code = (
        "import numba\n"
        "from trendgym.compile import announce_compiles\n"
        "announce_compiles(); announce_compiles()  # idempotent: one line per compile\n"
        "@numba.njit(cache=False)\n"
        "def inner_nb(x):\n    return x * 2\n"
        "@numba.njit(cache=False)\n"
        "def outer_nb(x):\n    return inner_nb(x) + 1\n"
        "print(outer_nb(3))\n"
        "print(outer_nb(4))  # compiled already: silent\n"
    )
    out = _run([sys.executable, "-c", code])
    assert out.stdout.split() == ["7", "9"]
    lines = [line for line in out.stderr.splitlines() if line.startswith("trendgym:")]
    # one pair for the outermost kernel; the kernel it calls compiles inside it, unannounced
    assert len(lines) == 2, out.stderr
    assert "numba is compiling __main__.outer_nb" in lines[0]
    assert "python -m trendgym.compile" in lines[0]
    assert lines[1].startswith("trendgym: compiled __main__.outer_nb in ")


def test_compile_step_warms_an_env_and_reports_it():
    out = _run([sys.executable, "-m", "trendgym.compile", "trendgym/Execution-v0"])
    assert "trendgym: compiling trendgym/Execution-v0" in out.stdout
    assert "trendgym: trendgym/Execution-v0 ready in " in out.stdout
    assert "kernels compiled and cached" in out.stdout


def test_compile_step_warms_the_tape_tools_beside_an_env():
    out = _run([sys.executable, "-m", "trendgym.compile", "trendgym/Portfolio-v0", "--tape-tools"])
    assert "trendgym: trendgym/Portfolio-v0 ready in " in out.stdout
    assert "trendgym: the tape tools ready in " in out.stdout


def test_compile_step_refuses_an_unknown_id():
    with pytest.raises(SystemExit):
        tg_compile.main(["trendgym/Nope-v0"])
