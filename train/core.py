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
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
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
    vec_env: str = "auto"  # auto (subproc when n_envs > 1) | dummy | subproc
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
        if self.vec_env not in ("auto", "dummy", "subproc"):
            raise ValueError(f"vec_env must be 'auto', 'dummy' or 'subproc', got {self.vec_env!r}")
        for name in ("extractor_kwargs", "env_kwargs", "model_kwargs"):
            value = getattr(self, name)
            if not isinstance(value, dict):
                raise TypeError(f"{name} must be a dict, got {type(value).__name__}")
            try:
                json.dumps(value)
            except TypeError as err:
                raise TypeError(f"{name} must be JSON-serialisable ({err})") from None

    @property
    def run_dir(self) -> Path:
        if self.out:
            return Path(self.out)
        slug = self.env_id.replace("/", "-").replace(":", "-")
        return Path("runs") / f"{slug}-{self.algo}-s{self.seed}"

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
    """Picklable ``gym.make`` for (Subproc)VecEnv workers; imports trendgym to register its ids."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any]) -> None:
        self.env_id, self.env_kwargs = env_id, dict(env_kwargs)

    def __call__(self) -> gym.Env:
        import trendgym  # noqa: F401  (registers trendgym/* ids in a fresh worker)

        return gym.make(self.env_id, **self.env_kwargs)


def make_vec_env(config: TrainConfig, monitor_file: str | None = None) -> VecEnv:
    """``n_envs`` copies of the env, in subprocesses when ``n_envs > 1`` (unless ``vec_env="dummy"``)."""
    factories = [EnvFactory(config.env_id, config.env_kwargs) for _ in range(config.n_envs)]
    use_subproc = config.vec_env == "subproc" or (config.vec_env == "auto" and config.n_envs > 1)
    venv: VecEnv = SubprocVecEnv(factories) if use_subproc else DummyVecEnv(factories)
    return VecMonitor(venv, filename=monitor_file)


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
    """A tqdm bar over the run's total steps (starting where a resumed run left off)."""

    def __init__(self, total: int) -> None:
        super().__init__()
        self.total = int(total)
        self.bar: tqdm | None = None

    def _on_training_start(self) -> None:
        # disable=None: no bar when stderr is not a terminal (logs stay readable)
        self.bar = tqdm(
            total=self.total,
            initial=self.model.num_timesteps,
            unit="step",
            dynamic_ncols=True,
            disable=None,
        )

    def _on_step(self) -> bool:
        assert self.bar is not None
        self.bar.update(self.num_timesteps - self.bar.n)
        return True

    def _on_rollout_end(self) -> None:
        episodes = self.model.ep_info_buffer
        if self.bar is not None and episodes:
            self.bar.set_postfix(ep_return=f"{sum(e['r'] for e in episodes) / len(episodes):.4g}")

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.close()


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


def run(config: TrainConfig, callbacks: Sequence[BaseCallback] = ()) -> TrainResult:
    """Train (or resume) per ``config``; returns the run dir, the model and the open VecEnv.

    A ``KeyboardInterrupt`` during learning saves a checkpoint, closes the envs and is re-raised;
    ``resume=True`` then continues from the newest checkpoint with the step counter intact.
    """
    run_dir = config.run_dir
    checkpoints = list_checkpoints(run_dir)
    if config.resume:
        if not checkpoints:
            raise ValueError(f"nothing to resume: {run_dir} has no checkpoints")
        _check_resumable(read_config(run_dir), config)
        start_step, start_dir = checkpoints[-1]
    else:
        if (run_dir / CONFIG_FILE).exists() or checkpoints:
            raise ValueError(
                f"run directory {run_dir} already holds a run; resume it or choose another out"
            )
        start_step, start_dir = 0, None
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "monitor").mkdir(exist_ok=True)
    versions = package_versions()
    (run_dir / CONFIG_FILE).write_text(json.dumps(config.to_json(), indent=2) + "\n")
    (run_dir / VERSIONS_FILE).write_text(json.dumps(versions, indent=2) + "\n")

    venv: VecEnv = make_vec_env(config, str(run_dir / "monitor" / f"from_{start_step:012d}"))
    try:
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

    hooks: list[BaseCallback] = list(callbacks)
    if config.checkpoint_every:
        hooks.append(CheckpointEvery(config.checkpoint_every, run_dir))
    if config.progress_bar:
        hooks.append(ProgressBar(config.timesteps))
    remaining = config.timesteps - model.num_timesteps
    started, status = time.perf_counter(), "completed"
    try:
        if remaining > 0:
            model.learn(
                remaining,
                callback=CallbackList(hooks),
                reset_num_timesteps=start_dir is None,
                tb_log_name="run",
            )
    except KeyboardInterrupt:
        status = "interrupted"
        save_checkpoint(model, run_dir)
        venv.close()
        raise
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


def train(config: TrainConfig, callbacks: Sequence[BaseCallback] = ()) -> Path:
    """Train (or resume) and return the run directory; see :func:`run`."""
    result = run(config, callbacks)
    result.env.close()
    return result.run_dir


def args_from_cli(cls: type, argv: Sequence[str] | None = None) -> Any:
    """Build a dataclass of script arguments from ``--field value`` flags (dicts as JSON)."""
    parser = argparse.ArgumentParser(
        description=(cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else None
    )
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        elif isinstance(default, dict):
            parser.add_argument(flag, type=json.loads, default=default, help="JSON object")
        elif default is None:
            parser.add_argument(flag, default=None)
        else:
            parser.add_argument(flag, type=type(default), default=default)
    return cls(**vars(parser.parse_args(argv if argv is not None else sys.argv[1:])))
