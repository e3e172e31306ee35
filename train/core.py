"""Train an SB3 agent on any Gymnasium env id into a run directory; resume it after interruption.

``train(TrainConfig(env_id="trendgym/Execution-v0", timesteps=100_000)) -> run_dir``. The run
directory layout is described in :mod:`trendgym.agents.loading`, which loads it back.

Observation pipeline (the loader replays the same one)::

    Dummy/SubprocVecEnv -> VecMonitor -> MaskAwareVecNormalize -> VecFrameStack (n_stack > 1)

Normalising single frames before stacking keeps the statistics per frame, so the loader can
normalise raw observations and stack them itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import multiprocessing
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.vec_env import (
    DummyVecEnv,
    SubprocVecEnv,
    VecEnv,
    VecFrameStack,
    VecMonitor,
)
from tqdm.auto import tqdm

from trendgym.agents.loading import (
    CONFIG_FILE,
    MODEL_FILE,
    REPLAY_BUFFER_FILE,
    SESSIONS_FILE,
    VECNORMALIZE_FILE,
    VERSIONS_FILE,
    checkpoint_dir,
    list_checkpoints,
    read_config,
)
from trendgym.agents.sb3 import (
    EXTRACTORS,
    MaskAwareVecNormalize,
    algo_class,
    default_hyperparameters,
    make_model,
    normalize_env,
    obs_layout_of,
)
from trendgym.envs.blind import BlindObservation
from trendgym.train.preflight import (
    OneLineParser,
    check_run,
    default_run_dir,
    json_object,
    print_plan,
)
from trendgym.train.signals import handlers_set

# Fields that may change between a run and its resumption; everything else must match.
_RESUMABLE_CHANGES = frozenset(
    {
        "timesteps",
        "resume",
        "out",
        "progress_bar",
        "verbose",
        "checkpoint_every",
        "tensorboard",
        "vec_env",
    }
)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; saved verbatim as ``config.json``."""

    env_id: str
    algo: str = "ppo"
    timesteps: int = 100_000  # total env steps, counted across resumptions
    seed: int = 0
    n_envs: int = 1
    out: str | None = None  # run directory; default runs/<env>-<algo>-s<seed>
    resume: bool = False
    extractor: str | None = "default"  # mlp | lstm | attention | None | "default" (per env id)
    extractor_kwargs: dict[str, Any] = field(default_factory=dict)
    n_stack: int = 1  # frames stacked by VecFrameStack (lstm/attention read the window)
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # SB3 keywords over the defaults
    norm_obs: bool = True
    norm_reward: bool = False
    checkpoint_every: int = 10_000  # env steps between checkpoints; 0 = only final/interrupt
    vec_env: str = "auto"  # auto (subproc when n_envs > 1) | dummy | subproc | native (batched)
    blind: bool = False  # observations replaced by noise (the placebo of a walk-forward search)
    progress_bar: bool = True
    tensorboard: bool = True
    verbose: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.env_id, str) or not self.env_id:
            raise ValueError(f"env_id must be a non-empty string, got {self.env_id!r}")
        algo_class(self.algo)
        for name in ("timesteps", "n_envs", "n_stack"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("seed", "checkpoint_every", "verbose"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if self.extractor not in (None, "default", *EXTRACTORS):
            raise ValueError(
                f"extractor must be one of {[None, 'default', *EXTRACTORS]}, got {self.extractor!r}"
            )
        if self.vec_env not in ("auto", "dummy", "subproc", "native"):
            raise ValueError(
                f"vec_env must be 'auto', 'dummy', 'subproc' or 'native', got {self.vec_env!r}"
            )
        if self.blind and self.vec_env == "native":
            raise ValueError(
                "blind observations wrap single envs: use vec_env 'dummy' or 'subproc'"
            )
        for name in ("extractor_kwargs", "env_kwargs", "model_kwargs"):
            value = getattr(self, name)
            if not isinstance(value, dict):
                raise TypeError(f"{name} must be a dict, got {type(value).__name__}")
            try:
                json.dumps(value)
            except TypeError as err:
                raise TypeError(f"{name} must be JSON-serialisable ({err})") from None

    @classmethod
    def from_args(cls, args: Any, **fields: Any) -> TrainConfig:
        """A config from a training script's ``Args`` dataclass: each of its fields that
        TrainConfig also has, then `fields` (what the script sets or derives itself)."""
        names = {f.name for f in dataclasses.fields(cls)}
        given = {f.name: getattr(args, f.name) for f in dataclasses.fields(args)}
        return cls(**{**{k: v for k, v in given.items() if k in names}, **fields})

    @property
    def run_dir(self) -> Path:
        return Path(self.out) if self.out else default_run_dir(self.env_id, self.algo, self.seed)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    run_dir: Path
    model: BaseAlgorithm
    env: VecEnv  # the training VecEnv chain, still open (close it when done)


def package_versions() -> dict[str, Any]:
    """Versions of everything a result depends on, and the git commit of the package if any."""
    versions: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for key, dist in [
        ("numpy", "numpy"),
        ("torch", "torch"),
        ("stable_baselines3", "stable-baselines3"),
        ("gymnasium", "gymnasium"),
        ("trendgym", "trendgym"),
    ]:
        try:
            versions[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[key] = None
    import trendgym

    root = Path(trendgym.__file__).resolve().parent
    versions["git_commit"] = versions["git_dirty"] = None
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if head.returncode == 0:
            versions["git_commit"] = head.stdout.strip()
            status = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            versions["git_dirty"] = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return versions


class EnvFactory:
    """Picklable ``gym.make`` for (Subproc)VecEnv workers; imports trendgym to register its ids.

    ``worker=True`` (SubprocVecEnv) makes the worker process ignore SIGINT and SIGTERM: Ctrl-C
    reaches every process of the terminal's group, and a worker that died of it would take the
    parent's checkpoint-on-interrupt down with it. The parent stops and closes its workers.
    ``blind=True`` replaces the env's observations by noise (a walk-forward placebo).
    """

    def __init__(
        self,
        env_id: str,
        env_kwargs: dict[str, Any],
        worker: bool = False,
        blind: bool = False,
    ) -> None:
        self.env_id, self.env_kwargs, self.worker = env_id, dict(env_kwargs), worker
        self.blind = blind

    def __call__(self) -> gym.Env:
        if self.worker and multiprocessing.parent_process() is not None:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        import trendgym  # noqa: F401  (registers trendgym/* ids in a fresh worker)

        env = gym.make(self.env_id, **self.env_kwargs)
        return BlindObservation(env) if self.blind else env


def _envs(config: TrainConfig) -> VecEnv:
    if config.vec_env == "native":
        from trendgym.envs.sb3_vec import make_sb3_vec_env

        return make_sb3_vec_env(config.env_id, config.n_envs, seed=config.seed, **config.env_kwargs)
    use_subproc = config.vec_env == "subproc" or (config.vec_env == "auto" and config.n_envs > 1)
    factories = [
        EnvFactory(config.env_id, config.env_kwargs, worker=use_subproc, blind=config.blind)
        for _ in range(config.n_envs)
    ]
    return SubprocVecEnv(factories) if use_subproc else DummyVecEnv(factories)


def make_vec_env(config: TrainConfig, monitor_file: str | None = None) -> VecEnv:
    """``n_envs`` copies of the env, in subprocesses when ``n_envs > 1`` (unless ``vec_env="dummy"``),
    or with ``vec_env="native"`` one batched env stepping them all in this process."""
    return VecMonitor(_envs(config), filename=monitor_file)


def save_checkpoint(model: BaseAlgorithm, run_dir: Path) -> Path:
    """Write model, VecNormalize and replay buffer under checkpoints/step_<N>, atomically."""
    final = checkpoint_dir(run_dir, model.num_timesteps)
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    model.save(partial / MODEL_FILE)
    vec_normalize = model.get_vec_normalize_env()
    if vec_normalize is not None:
        vec_normalize.save(str(partial / VECNORMALIZE_FILE))
    has_buffer = getattr(model, "replay_buffer", None) is not None
    if has_buffer:
        model.save_replay_buffer(partial / REPLAY_BUFFER_FILE)
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    if has_buffer:  # only the newest checkpoint resumes; older buffers are dead weight
        for _, older in list_checkpoints(run_dir):
            if older != final:
                (older / REPLAY_BUFFER_FILE).unlink(missing_ok=True)
    return final


class CheckpointEvery(BaseCallback):
    """Save a checkpoint each time the step counter crosses a multiple of ``every``."""

    def __init__(self, every: int, run_dir: Path) -> None:
        super().__init__()
        self.every, self.run_dir, self.next_at = int(every), run_dir, 0

    def _on_training_start(self) -> None:
        self.next_at = (self.model.num_timesteps // self.every + 1) * self.every

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.next_at:
            save_checkpoint(self.model, self.run_dir)
            self.next_at = (self.num_timesteps // self.every + 1) * self.every
        return True


class ProgressBar(BaseCallback):
    """Progress over the run's total steps (starting where a resumed run left off).

    A tqdm bar on a terminal; when stderr is redirected (``trendgym train > log 2>&1``, a job
    scheduler) one plain line every ``every_percent`` percent instead, so logs show progress
    without carriage-return noise.
    """

    def __init__(self, total: int, every_percent: float = 5.0, stream: Any = None) -> None:
        super().__init__()
        self.total, self.every_percent = int(total), float(every_percent)
        self.stream = stream
        self.bar: tqdm | None = None
        self.next_line_at, self.started, self.start_step = 0, 0.0, 0

    def _out(self) -> Any:
        return self.stream if self.stream is not None else sys.stderr

    def _on_training_start(self) -> None:
        self.start_step, self.started = self.model.num_timesteps, time.perf_counter()
        if self._out().isatty():
            self.bar = tqdm(
                total=self.total,
                initial=self.start_step,
                unit="step",
                dynamic_ncols=True,
                file=self._out(),
            )
        else:
            self.next_line_at = self._next_line_after(self.start_step)

    def _next_line_after(self, step: int) -> int:
        every = max(1, round(self.total * self.every_percent / 100))
        return (step // every + 1) * every

    def _mean_return(self) -> str:
        episodes = self.model.ep_info_buffer
        return f"{sum(e['r'] for e in episodes) / len(episodes):.4g}" if episodes else "n/a"

    def _on_step(self) -> bool:
        if self.bar is not None:
            self.bar.update(self.num_timesteps - self.bar.n)
        elif self.num_timesteps >= self.next_line_at:
            done = min(self.num_timesteps, self.total)
            elapsed = time.perf_counter() - self.started
            rate = (done - self.start_step) / elapsed if elapsed > 0 else 0.0
            left = f"{(self.total - done) / rate:.0f} s" if rate > 0 else "?"
            print(
                f"trendgym: {100 * done / self.total:.0f}% ({done:,}/{self.total:,} steps), "
                f"{elapsed:.0f} s elapsed, ~{left} left, ep_return {self._mean_return()}",
                file=self._out(),
                flush=True,
            )
            self.next_line_at = self._next_line_after(self.num_timesteps)
        return True

    def _on_rollout_end(self) -> None:
        if self.bar is not None and self.model.ep_info_buffer:
            self.bar.set_postfix(ep_return=self._mean_return())

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.close()


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped training; a checkpoint of the steps done was saved first."""

    def __init__(self, signum: int, step: int, total: int, run_dir: Path) -> None:
        self.signum, self.step, self.run_dir = signum, step, run_dir
        self.exit_code = 128 + signum  # the shell's convention for death by signal
        super().__init__(
            f"{signal.Signals(signum).name} at step {step:,} of {total:,}: checkpoint saved "
            f"in {run_dir}; continue with the same command plus --resume"
        )


class StopOnSignal(BaseCallback):
    """Ends learning at the next env step after SIGINT or SIGTERM (see :func:`_stop_on_signals`)."""

    def __init__(self) -> None:
        super().__init__()
        self.received: int | None = None

    def _on_step(self) -> bool:
        return self.received is None


@contextmanager
def _stop_on_signals(stop: StopOnSignal) -> Iterator[None]:
    """Route SIGINT/SIGTERM to ``stop`` so learning ends cleanly and a checkpoint is saved.

    A second signal raises KeyboardInterrupt at once (for a learner stuck in a long update).
    Signal handlers can only be set from the main thread; elsewhere this does nothing. A signal
    the process ignores stays ignored (a worker whose parent stops it, a background job).
    """

    def handler(signum: int, frame: Any) -> None:
        if stop.received is not None:
            raise KeyboardInterrupt
        stop.received = signum

    routed = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) != signal.SIG_IGN]
    with handlers_set(routed, handler):
        yield


def _check_resumable(saved: dict[str, Any], config: TrainConfig) -> None:
    current = config.to_json()
    for key in sorted(set(saved) | set(current)):
        if key not in _RESUMABLE_CHANGES and saved.get(key) != current.get(key):
            raise ValueError(
                f"cannot resume: {key}={current.get(key)!r} differs from the run's {saved.get(key)!r}"
            )


def _append_session(run_dir: Path, record: dict[str, Any]) -> None:
    with open(run_dir / SESSIONS_FILE, "a") as f:
        f.write(json.dumps(record) + "\n")


def run(
    config: TrainConfig, callbacks: Sequence[BaseCallback] = (), *, announce: bool | None = None
) -> TrainResult:
    """Train (or resume) per ``config``; returns the run dir, the model and the open VecEnv.

    First the preflight (:mod:`trendgym.train.preflight`): the env is built once with
    ``env_kwargs`` and the run directory checked, so a bad input is refused before anything is
    written; ``announce`` (default: ``config.progress_bar``) prints the plan to stderr.

    SIGINT or SIGTERM during learning (and a ``KeyboardInterrupt`` from a callback) saves a
    checkpoint, closes the envs and raises :class:`TrainingInterrupted` (a KeyboardInterrupt);
    ``resume=True`` then continues from the newest checkpoint with the step counter intact. A
    run directory without a checkpoint is started afresh, with or without ``resume``.
    """
    run_dir = config.run_dir
    announce = config.progress_bar if announce is None else announce
    # the probe (one more env, a few timed steps) only feeds the plan; without it the envs
    # below are still built before anything is written
    probe, state, _ = check_run(
        config.env_id, config.env_kwargs, run_dir, config.resume, probe=announce
    )
    start_step, start_dir = 0, None
    if state == "resume":
        _check_resumable(read_config(run_dir), config)
        start_step, start_dir = list_checkpoints(run_dir)[-1]
    if probe is not None:
        print_plan(config, run_dir, probe, state, start_step)
    venv: VecEnv = _envs(config)  # an env refusing its kwargs stops us before any write
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "monitor").mkdir(exist_ok=True)
        versions = package_versions()
        (run_dir / CONFIG_FILE).write_text(json.dumps(config.to_json(), indent=2) + "\n")
        (run_dir / VERSIONS_FILE).write_text(json.dumps(versions, indent=2) + "\n")
        venv = VecMonitor(venv, filename=str(run_dir / "monitor" / f"from_{start_step:012d}"))
        layout = obs_layout_of(venv)
        if config.norm_obs or config.norm_reward:
            saved_stats = None if start_dir is None else start_dir / VECNORMALIZE_FILE
            if saved_stats is not None and saved_stats.is_file():
                venv = MaskAwareVecNormalize.load(str(saved_stats), venv)
                venv.training = True
            else:
                gamma = {
                    **default_hyperparameters(config.env_id, config.algo),
                    **config.model_kwargs,
                }
                venv = normalize_env(
                    venv,
                    norm_obs=config.norm_obs,
                    norm_reward=config.norm_reward,
                    gamma=float(gamma.get("gamma", 0.99)),
                    obs_layout=layout,
                )
        if config.n_stack > 1:
            venv = VecFrameStack(venv, config.n_stack)
        tb_dir = str(run_dir / "tb") if config.tensorboard else None
        if start_dir is None:
            model = make_model(
                config.algo,
                venv,
                seed=config.seed,
                env_id=config.env_id,
                extractor=config.extractor,
                extractor_kwargs=config.extractor_kwargs,
                obs_layout=layout,
                n_stack=config.n_stack,
                tensorboard_log=tb_dir,
                verbose=config.verbose,
                **config.model_kwargs,
            )
        else:
            model = algo_class(config.algo).load(
                start_dir / MODEL_FILE,
                env=venv,
                device="cpu",
                tensorboard_log=tb_dir,
                verbose=config.verbose,
            )
            if (start_dir / REPLAY_BUFFER_FILE).is_file() and hasattr(model, "replay_buffer"):
                model.load_replay_buffer(start_dir / REPLAY_BUFFER_FILE)
            # fresh but reproducible randomness for the continuation
            model.set_random_seed(config.seed + start_step)
    except BaseException:
        venv.close()
        raise

    stop = StopOnSignal()
    hooks: list[BaseCallback] = [stop, *callbacks]
    if config.checkpoint_every:
        hooks.append(CheckpointEvery(config.checkpoint_every, run_dir))
    if config.progress_bar:
        hooks.append(ProgressBar(config.timesteps))
    remaining = config.timesteps - model.num_timesteps
    started, status = time.perf_counter(), "completed"
    try:
        with _stop_on_signals(stop):
            if remaining > 0:
                model.learn(
                    remaining,
                    callback=CallbackList(hooks),
                    reset_num_timesteps=start_dir is None,
                    tb_log_name="run",
                )
            if stop.received is not None:
                raise TrainingInterrupted(
                    stop.received, int(model.num_timesteps), config.timesteps, run_dir
                )
    except KeyboardInterrupt as interrupt:
        status = "interrupted"
        save_checkpoint(model, run_dir)
        venv.close()
        if isinstance(interrupt, TrainingInterrupted):
            raise
        raise TrainingInterrupted(
            signal.SIGINT, int(model.num_timesteps), config.timesteps, run_dir
        ) from None
    finally:
        _append_session(
            run_dir,
            {
                "status": status,
                "start_step": start_step,
                "end_step": int(model.num_timesteps),
                "wall_seconds": round(time.perf_counter() - started, 3),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "config": config.to_json(),
                "versions": versions,
            },
        )
    final = save_checkpoint(model, run_dir)
    shutil.copy2(final / MODEL_FILE, run_dir / MODEL_FILE)
    if (final / VECNORMALIZE_FILE).is_file():
        shutil.copy2(final / VECNORMALIZE_FILE, run_dir / VECNORMALIZE_FILE)
    return TrainResult(run_dir, model, venv)


def train(
    config: TrainConfig, callbacks: Sequence[BaseCallback] = (), *, announce: bool | None = None
) -> Path:
    """Train (or resume) and return the run directory; see :func:`run`."""
    result = run(config, callbacks, announce=announce)
    result.env.close()
    return result.run_dir


def _script_parser(cls: type) -> argparse.ArgumentParser:
    parser = OneLineParser(
        description=(cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else None
    )
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        elif isinstance(default, dict):
            parser.add_argument(flag, type=json_object, default=default, help="JSON object")
        elif default is None:
            parser.add_argument(flag, default=None)
        else:
            parser.add_argument(flag, type=type(default), default=default)
    return parser


def args_from_cli(cls: type, argv: Sequence[str] | None = None) -> Any:
    """Build a dataclass of script arguments from ``--field value`` flags (dicts as JSON)."""
    parser = _script_parser(cls)
    return cls(**vars(parser.parse_args(argv if argv is not None else sys.argv[1:])))


def run_script(cls: type, main: Any, report: Any = None, argv: Sequence[str] | None = None) -> int:
    """A ``python -m trendgym.train.<script>`` entry point: parse ``cls``, ``main``, ``report``.

    Bad arguments (and inputs the preflight refuses) exit 2 with one line, as argparse does;
    SIGINT or SIGTERM exits with one line saying where the checkpoint is, not a traceback.
    """
    parser = _script_parser(cls)
    try:
        args = cls(**vars(parser.parse_args(argv if argv is not None else sys.argv[1:])))
        run_dir = main(args)
        if report is not None:
            report(run_dir)
        print(run_dir)
    except KeyboardInterrupt as stop:
        print(f"{parser.prog}: {stop or 'interrupted; nothing was saved'}", file=sys.stderr)
        return int(getattr(stop, "exit_code", 130))
    except (ValueError, TypeError) as err:
        parser.exit(2, f"{parser.prog}: error: {' '.join(str(err).split())}\n")
    return 0
