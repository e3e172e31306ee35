"""Checks a training run can start, before torch, SB3 or any compute: the env, the run directory.

Everything here is light (gymnasium and trendgym's envs only), so ``trendgym train`` refuses a
bad ``--env``, ``--env-kwargs`` or ``--out`` in about a second, creates nothing when it does,
and prints the plan (steps, envs, a rough wall time) before training starts.

A run directory is always either resumable or reusable: with checkpoints it resumes (or is
refused without ``--resume``); without one (interrupted before its first checkpoint, or failed
while starting) it is started afresh, with or without ``--resume``.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

# Mirrors trendgym.agents.loading (which imports SB3): the files a run directory holds.
CONFIG_FILE = "config.json"
MODEL_FILE = "model.zip"
CHECKPOINTS_DIR = "checkpoints"

# Rough learner cost per env step (policy forward + its share of gradient steps) with the
# default small MLPs on one CPU core; the plan adds the env's measured step time to it.
_LEARNER_SECONDS_PER_STEP = {"ppo": 6e-4, "a2c": 5e-4, "sac": 5e-3}
_PROBE_STEPS, _PROBE_SECONDS = 200, 0.5


def json_object(text: str) -> dict[str, Any]:
    """argparse type of the ``--*-kwargs`` flags: a JSON object, or a one-line usage error."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON: {text!r} ({err.msg})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the full usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


@dataclass(frozen=True)
class EnvProbe:
    """What building the env once told us: its id and the seconds one step took (None if unknown)."""

    env_id: str
    step_seconds: float | None
    observation_space: Any = None
    action_space: Any = None


_probed: dict[tuple[str, str], EnvProbe] = {}


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    # gymnasium appends "was raised from the environment creator for <id> with kwargs (...)"
    text = text.split(" was raised from the environment creator")[0]
    return text if isinstance(err, ValueError | TypeError) else f"{type(err).__name__}: {text}"


def registered_ids() -> list[str]:
    import gymnasium as gym

    import trendgym  # noqa: F401  (registers trendgym/* ids)

    return sorted(gym.registry)


def check_env_id(env_id: str) -> None:
    """Refuse an env id gymnasium does not know, naming it, trendgym's ids and a close match."""
    import gymnasium as gym

    ids = registered_ids()
    try:
        gym.spec(env_id)
    except gym.error.Error as err:
        ours = [i for i in ids if i.startswith("trendgym/")]
        close = difflib.get_close_matches(env_id, ids, n=1, cutoff=0.8)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ValueError(
            f"--env: {env_id!r} is not a registered env id ({_one_line(err)}); trendgym's ids: "
            f"{', '.join(ours)}, plus gymnasium's own such as CartPole-v1 and Pendulum-v1{hint}"
        ) from None


def probe_env(env_id: str, env_kwargs: dict[str, Any], flag: str = "--env-kwargs") -> EnvProbe:
    """Build the env once with ``env_kwargs`` (refusing what it refuses) and time a few steps.

    Random actions stand in for the policy; if they make the env fail, only the estimate is lost.
    Probes are remembered per (id, kwargs) so the CLI and the trainer build the env once;
    `flag` names the kwargs in the error.
    """
    key = (env_id, json.dumps(env_kwargs, sort_keys=True, default=str))
    if key in _probed:
        return _probed[key]
    import gymnasium as gym

    check_env_id(env_id)
    try:
        env = gym.make(env_id, **env_kwargs)
        env.reset(seed=0)
    except Exception as err:  # any refusal by the env is the user's kwargs, reported in one line
        raise ValueError(
            f"{flag}: {env_id} refused {json.dumps(env_kwargs)}: {_one_line(err)}"
        ) from None
    step_seconds = None
    try:
        env.action_space.seed(0)
        steps, started = 0, time.perf_counter()
        while steps < _PROBE_STEPS and time.perf_counter() - started < _PROBE_SECONDS:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            steps += 1
            if terminated or truncated:
                env.reset()
        step_seconds = (time.perf_counter() - started) / max(steps, 1)
    except Exception:  # noqa: BLE001  (random actions may be outside what the env accepts)
        step_seconds = None
    finally:
        env.close()
    probe = _probed[key] = EnvProbe(env_id, step_seconds, env.observation_space, env.action_space)
    return probe


def checkpoint_steps(run_dir: str | Path) -> list[int]:
    """Steps of the run's complete checkpoints, oldest first (as ``agents.loading`` lists them)."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    steps = []
    for path in root.glob("step_*"):
        suffix = path.name.removeprefix("step_")
        if path.is_dir() and suffix.isdigit() and (path / MODEL_FILE).is_file():
            steps.append(int(suffix))
    return sorted(steps)


def default_run_dir(env_id: str, algo: str, seed: int) -> Path:
    """``runs/<env>-<algo>-s<seed>``: where a run goes without ``--out``."""
    slug = env_id.replace("/", "-").replace(":", "-")
    return Path("runs") / f"{slug}-{algo}-s{seed}"


def can_create_in(path: Path) -> bool:
    """True when a file can be created in the directory ``path`` (probed: root ignores modes)."""
    try:
        fd, name = tempfile.mkstemp(dir=path, prefix=".trendgym-write-check-")
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


def check_writable_dir(path: str | Path, flag: str) -> None:
    """Refuse a directory that cannot be created or written, without creating anything."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag}: {str(path)!r} exists and is not a directory")
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(
            f"{flag}: cannot create {str(path)!r}: {str(existing)!r} is not a directory"
        )
    if not can_create_in(existing):
        raise ValueError(f"{flag}: cannot write in {str(existing.resolve())!r} (read-only)")


def run_dir_state(run_dir: str | Path, resume: bool) -> tuple[str, int]:
    """How a run starts in ``run_dir``: ("new" | "restart" | "resume", start step).

    "restart" is a directory holding a run that saved no checkpoint: nothing was trained, so it
    is started afresh. A directory with checkpoints must be resumed (``resume=True``).
    """
    run_dir = Path(run_dir)
    steps = checkpoint_steps(run_dir)
    if steps:
        if not resume:
            raise ValueError(
                f"--out: {str(run_dir)!r} already holds a run trained to step {steps[-1]}; "
                "continue it with --resume or choose another --out"
            )
        return "resume", steps[-1]
    return ("restart" if (run_dir / CONFIG_FILE).exists() else "new"), 0


def check_run(
    env_id: str,
    env_kwargs: dict[str, Any],
    run_dir: str | Path,
    resume: bool,
    probe: bool = True,
) -> tuple[EnvProbe | None, str, int]:
    """All cheap checks of a training run, in the order a user fixes them; creates nothing.

    ``probe=False`` checks the env id but does not build the env (the caller builds it anyway).
    """
    check_writable_dir(run_dir, "--out")
    state, start = run_dir_state(run_dir, resume)
    if not probe:
        check_env_id(env_id)
        return None, state, start
    return probe_env(env_id, env_kwargs), state, start


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def plan_text(
    *,
    env_id: str,
    algo: str,
    timesteps: int,
    n_envs: int,
    run_dir: str | Path,
    probe: EnvProbe,
    state: str,
    start: int,
) -> str:
    """One line saying what is about to run, where, and roughly how long it will take."""
    remaining = max(timesteps - start, 0)
    what = {
        "new": "new run",
        "restart": "restarting a run that saved no checkpoint",
        "resume": f"resuming from step {start:,}",
    }[state]
    text = (
        f"trendgym: {algo.upper()} on {env_id}: {remaining:,} of {timesteps:,} steps to go "
        f"({n_envs} env{'s' if n_envs > 1 else ''}) into {run_dir} ({what})"
    )
    if probe.step_seconds is not None and remaining:
        parallel = min(n_envs, os.cpu_count() or 1)
        per_step = probe.step_seconds / parallel + _LEARNER_SECONDS_PER_STEP.get(algo, 1e-3)
        text += (
            f"; rough wall time {_duration(remaining * per_step)} "
            f"(env step {probe.step_seconds * 1e3:.2f} ms measured)"
        )
    return text


def print_plan(run: Any, run_dir: str | Path, probe: EnvProbe, state: str, start: int) -> None:
    """`plan_text` of `run` (anything with ``env_id``, ``algo``, ``timesteps`` and ``n_envs``:
    the CLI's arguments or a ``TrainConfig``) on stderr."""
    plan = plan_text(
        env_id=run.env_id,
        algo=run.algo,
        timesteps=run.timesteps,
        n_envs=run.n_envs,
        run_dir=run_dir,
        probe=probe,
        state=state,
        start=start,
    )
    print(plan, file=sys.stderr, flush=True)
