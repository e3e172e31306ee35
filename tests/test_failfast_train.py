"""trendgym train fails fast and loses nothing: preflight refusals, signals, resumable run dirs."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trendgym.agents import load
from trendgym.agents.loading import list_checkpoints
from trendgym.train import preflight
from trendgym.train.cli import main
from trendgym.train.core import ProgressBar, TrainConfig, train

TINY = {"n_steps": 64, "batch_size": 32, "n_epochs": 1, "policy_kwargs": {"net_arch": [8]}}


def _train_argv(out: Path, *extra: str, env: str = "Pendulum-v1") -> list[str]:
    return ["train", "--env", env, "--out", str(out), "--no-progress", *extra]


# argv (after `trendgym`) -> words the one-line error must contain. Every row exits 2.
BAD_TRAIN_INPUT = {
    "zero timesteps": (["--timesteps", "0"], ["--timesteps", "positive int", "0"]),
    "timesteps not an int": (["--timesteps", "1e4"], ["--timesteps", "not an int", "1e4"]),
    "zero n-envs": (["--n-envs", "0"], ["--n-envs", "positive int"]),
    "negative seed": (["--seed", "-1"], ["--seed", "non-negative int"]),
    "negative checkpoint-every": (["--checkpoint-every", "-5"], ["--checkpoint-every"]),
    "unknown algo": (["--algo", "dqn"], ["--algo", "invalid choice", "dqn"]),
    "env kwargs not an object": (["--env-kwargs", "[1]"], ["--env-kwargs", "JSON object"]),
    "env kwargs not JSON": (["--env-kwargs", "{x"], ["--env-kwargs", "not valid JSON"]),
    "unknown env id": (
        ["--env", "trendgym/Nope-v0"],
        ["--env", "trendgym/Nope-v0", "trendgym/Execution-v0", "trendgym/Portfolio-v0"],
    ),
    "malformed env id": (["--env", "not an id"], ["--env", "'not an id'", "Malformed"]),
    "typo in a gymnasium id": (["--env", "CartPol-v1"], ["did you mean CartPole-v1"]),
    "unknown env kwarg": (
        ["--env", "trendgym/Execution-v0", "--env-kwargs", '{"bogus": 1}'],
        ["--env-kwargs", "trendgym/Execution-v0", "bogus"],
    ),
    "env kwarg out of range": (
        ["--env", "trendgym/Execution-v0", "--env-kwargs", '{"urgency": 5}'],
        ["--env-kwargs", "urgency must be in [0, 1]", "5"],
    ),
    "out is a file": (["--out", "{file}"], ["--out", "not a directory"]),
    "out under a file": (["--out", "{file}/run"], ["--out", "is not a directory"]),
    "out read-only": (["--out", "/proc/trendgym-run"], ["--out", "'/proc'", "read-only"]),
}


@pytest.mark.parametrize("case", list(BAD_TRAIN_INPUT))
def test_bad_train_input_is_one_line_exit_2_and_creates_nothing(case, tmp_path, capsys):
    extra, words = BAD_TRAIN_INPUT[case]
    (tmp_path / "a_file").write_text("not a directory")
    extra = [e.replace("{file}", str(tmp_path / "a_file")) for e in extra]
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = ["train", "--env", "Pendulum-v1", "--out", str(tmp_path / "run"), "--no-progress"]
    with pytest.raises(SystemExit) as exit_:
        main(argv + extra)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, (word, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no half run directory


def test_trained_run_without_resume_is_refused_and_says_how_to_continue(tmp_path, capsys):
    out = tmp_path / "run"
    train(_config(out, timesteps=64))
    listing = sorted(p.relative_to(out) for p in out.rglob("*"))
    with pytest.raises(SystemExit) as exit_:
        main(_train_argv(out, "--timesteps", "128"))
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "already holds a run trained to step 64" in err and "--resume" in err
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == listing


def test_refusals_come_before_torch_and_sb3_are_imported():
    code = (
        "import sys, time\n"
        "from trendgym.train.cli import main\n"
        "for argv in (['train', '--env', 'Pendulum-v1', '--timesteps', '0'],\n"
        "             ['train', '--env', 'trendgym/Nope-v0']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as e:\n"
        "        print(e.code)\n"
        "print('torch' in sys.modules, 'stable_baselines3' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["2", "2", "False", "False"], done.stderr


def _config(out: Path, **kw) -> TrainConfig:
    base = dict(
        env_id="Pendulum-v1",
        timesteps=64,
        out=str(out),
        model_kwargs=TINY,
        checkpoint_every=0,
        progress_bar=False,
        tensorboard=False,
    )
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize("resume", [False, True])
def test_run_dir_without_checkpoint_is_started_afresh(tmp_path, resume):
    """What a run killed before its first checkpoint leaves: config.json and logs, no model."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps(_config(out, seed=3).to_json()))
    (out / "sessions.jsonl").write_text("")
    assert preflight.run_dir_state(out, resume) == ("restart", 0)
    train(_config(out, resume=resume))
    assert load(out).num_timesteps == 64
    assert json.loads((out / "config.json").read_text())["seed"] == 0  # the new run's config


def test_preflight_lists_checkpoints_like_the_loader(tmp_path):
    out = tmp_path / "run"
    train(_config(out, timesteps=128, checkpoint_every=64))
    (out / "checkpoints" / "step_000000000999.partial").mkdir()  # an unfinished save
    assert preflight.checkpoint_steps(out) == [s for s, _ in list_checkpoints(out)] == [64, 128]


def test_progress_is_plain_lines_when_not_a_terminal(tmp_path):
    stream = io.StringIO()  # not a TTY, like `trendgym train > log 2>&1`
    train(_config(tmp_path / "run", timesteps=192), callbacks=[ProgressBar(192, 25, stream)])
    lines = stream.getvalue().splitlines()
    assert [line.split("%")[0] for line in lines] == [
        "trendgym: 25",
        "trendgym: 50",
        "trendgym: 75",
        "trendgym: 100",
    ]
    assert "(96/192 steps)" in lines[1] and "left" in lines[1]


def test_plan_names_steps_envs_and_a_wall_time(tmp_path, capsys):
    train(_config(tmp_path / "run", timesteps=64), announce=True)
    err = capsys.readouterr().err
    assert "PPO on Pendulum-v1: 64 of 64 steps to go (1 env)" in err
    assert "rough wall time" in err and "ms measured" in err


# ----------------------------------------------------------------- signals, real processes


def _spawn(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # as `> log 2>&1`: progress must show up here
        text=True,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )


def _interrupt_after_progress(proc: subprocess.Popen, sig: int, whole_group: bool) -> str:
    """Wait for the first progress line, send ``sig``, return everything the process printed."""
    lines = []
    deadline = time.monotonic() + 180
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if "% (" in line:  # a progress line: training is under way
            break
        assert time.monotonic() < deadline, "".join(lines)
    if whole_group:  # Ctrl-C in a terminal reaches every process of the group, workers too
        os.killpg(proc.pid, sig)
    else:
        os.kill(proc.pid, sig)
    rest, _ = proc.communicate(timeout=120)
    return "".join(lines) + rest


CLI = ["-m", "trendgym.train.cli", "train", "--env", "Pendulum-v1", "--checkpoint-every", "0"]


@pytest.mark.parametrize(
    "sig,n_envs,whole_group",
    [
        (signal.SIGINT, 1, False),
        (signal.SIGTERM, 1, False),
        (signal.SIGINT, 2, True),
    ],
    ids=["sigint", "sigterm", "ctrl-c-subproc-envs"],
)
def test_signal_saves_a_checkpoint_and_resume_finishes(tmp_path, sig, n_envs, whole_group):
    common = ["--out", "run", "--n-envs", str(n_envs), "--model-kwargs", json.dumps(TINY)]
    proc = _spawn([*CLI, *common, "--timesteps", "10000"], tmp_path)
    output = _interrupt_after_progress(proc, sig, whole_group)
    assert proc.returncode == 128 + sig, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    last = output.strip().splitlines()[-1]
    assert f"{signal.Signals(sig).name} at step" in last and "--resume" in last, output
    steps = [s for s, _ in list_checkpoints(tmp_path / "run")]
    assert len(steps) == 1 and 0 < steps[0] < 10000
    target = steps[0] + 64 * n_envs
    if sig == signal.SIGINT and n_envs == 1:  # the command the message advises
        done = subprocess.run(
            [
                sys.executable,
                *CLI,
                *common,
                "--timesteps",
                str(target),
                "--resume",
                "--no-progress",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        assert done.returncode == 0, done.stderr
    else:  # the same through the API (saves a second process start)
        saved = json.loads((tmp_path / "run" / "config.json").read_text())
        out = str(tmp_path / "run")
        train(TrainConfig(**{**saved, "out": out, "timesteps": target, "resume": True}))
    assert load(tmp_path / "run").num_timesteps >= target
    sessions = (tmp_path / "run" / "sessions.jsonl").read_text().splitlines()
    assert [json.loads(s)["status"] for s in sessions] == ["interrupted", "completed"]


def test_script_interrupt_is_one_line(tmp_path):
    script = [
        "-m",
        "trendgym.train.ppo_execution",
        "--timesteps",
        "10000",
        "--out",
        "run",
        "--checkpoint-every",
        "0",
        "--model-kwargs",
        json.dumps(TINY),
    ]
    proc = _spawn(script, tmp_path)
    output = _interrupt_after_progress(proc, signal.SIGINT, whole_group=True)
    assert proc.returncode == 130, output
    assert "Traceback" not in output, output
    assert "SIGINT at step" in output.strip().splitlines()[-1]
    assert len(list_checkpoints(tmp_path / "run")) == 1


@pytest.mark.parametrize(
    "argv,words",
    [
        (["--env-kwargs", '{"urgency": 5}'], ["urgency must be in [0, 1]", "5"]),
        (["--timesteps", "lots"], ["--timesteps", "invalid int value", "'lots'"]),
        (["--timesteps", "0"], ["timesteps must be a positive int, got 0"]),
    ],
)
def test_script_bad_argument_is_one_line_exit_2(tmp_path, argv, words):
    done = subprocess.run(
        [sys.executable, "-m", "trendgym.train.ppo_execution", *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    for word in words:
        assert word in done.stderr, (word, done.stderr)
    assert not (tmp_path / "runs").exists()


def test_api_run_refuses_bad_env_kwargs_before_writing(tmp_path):
    """Without the plan (no probe), the envs themselves are built before anything is written."""
    with pytest.raises(TypeError, match="bogus"):
        train(_config(tmp_path / "run", env_kwargs={"bogus": 1}))
    assert not (tmp_path / "run").exists()


def test_python_dash_m_trendgym_is_the_console_command():
    out = subprocess.run(
        [sys.executable, "-m", "trendgym", "--help"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "train" in out.stdout and "evaluate" in out.stdout
