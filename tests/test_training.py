"""trendgym.train: run directories, checkpoints, resume, loading, CLI (tiny budgets)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback

from trendgym.agents import TrainedAgent, export_attention, load
from trendgym.agents.loading import list_checkpoints
from trendgym.train.core import TrainConfig, args_from_cli, run, train

sys.path.insert(0, str(Path(__file__).parent))  # the test-only portfolio env lives beside us
from test_agents_sb3 import TINY_ID, register_tiny  # noqa: E402

torch.set_num_threads(1)
register_tiny()

NET = {"net_arch": [8]}
BUDGET = {
    "ppo": dict(n_steps=64, batch_size=32, n_epochs=2, policy_kwargs=NET),
    "a2c": dict(n_steps=8, policy_kwargs=NET),
    "sac": dict(learning_starts=64, batch_size=32, buffer_size=1_000, policy_kwargs=NET),
}


def config(tmp_path: Path, algo: str = "ppo", env_id: str = "Pendulum-v1", **kw) -> TrainConfig:
    base = dict(
        env_id=env_id,
        algo=algo,
        timesteps=192,
        seed=0,
        out=str(tmp_path / "run"),
        model_kwargs=BUDGET[algo],
        checkpoint_every=64,
        progress_bar=False,
    )
    return TrainConfig(**{**base, **kw})


def rollout_obs(result, n: int) -> np.ndarray:
    """Raw observations from the run's own envs (so VecNormalize statistics matter)."""
    vec_normalize = result.model.get_vec_normalize_env()
    result.env.reset()
    frames = []
    for _ in range(n):
        frames.append(vec_normalize.get_original_obs().copy())
        result.env.step(
            np.array([result.env.action_space.sample() for _ in range(result.env.num_envs)])
        )
    return np.concatenate(frames)


@pytest.mark.parametrize(
    "algo,env_id",
    [
        ("ppo", "Pendulum-v1"),
        ("sac", "Pendulum-v1"),
        ("a2c", "Pendulum-v1"),
        ("ppo", "CartPole-v1"),
        ("a2c", "CartPole-v1"),
    ],
)
def test_train_save_load_predicts_like_the_model_in_memory(tmp_path, algo, env_id):
    result = run(config(tmp_path, algo, env_id))
    try:
        assert result.model.num_timesteps >= 192
        vec_normalize = result.model.get_vec_normalize_env()
        vec_normalize.training = False  # the loader's statistics are frozen too
        obs = rollout_obs(result, 20)
        agent = load(result.run_dir)
        assert isinstance(agent, TrainedAgent) and agent.num_timesteps == result.model.num_timesteps
        loaded, state = agent.predict(obs)
        in_memory, _ = result.model.predict(vec_normalize.normalize_obs(obs), deterministic=True)
        assert state is None
        np.testing.assert_array_equal(loaded, in_memory)
        single, _ = agent.predict(obs[0])
        one, _ = result.model.predict(vec_normalize.normalize_obs(obs[0]), deterministic=True)
        np.testing.assert_array_equal(single, one)  # (batched matmuls may round differently)
        assert not np.allclose(agent.normalize(obs), obs, atol=1e-3)  # the statistics are real
    finally:
        result.env.close()


def test_run_dir_holds_config_versions_checkpoints_and_logs(tmp_path):
    cfg = config(tmp_path, env_kwargs={"g": 9.81})
    run_dir = train(cfg)
    assert json.loads((run_dir / "config.json").read_text()) == cfg.to_json()
    versions = json.loads((run_dir / "versions.json").read_text())
    for key in (
        "python",
        "numpy",
        "torch",
        "stable_baselines3",
        "gymnasium",
        "trendgym",
        "git_commit",
    ):
        assert key in versions
    assert (
        versions["torch"] == torch.__version__.split("+")[0]
        or versions["torch"] == torch.__version__
    )
    assert [step for step, _ in list_checkpoints(run_dir)] == [64, 128, 192]
    assert (run_dir / "model.zip").is_file() and (run_dir / "vecnormalize.pkl").is_file()
    assert any((run_dir / "tb").rglob("events.out.tfevents.*"))
    monitors = list((run_dir / "monitor").glob("*.monitor.csv"))
    assert len(monitors) == 1 and len(monitors[0].read_text().splitlines()) >= 2
    with pytest.raises(ValueError, match="already holds a run"):
        train(cfg)


def test_resume_continues_the_step_counter(tmp_path):
    first = train(config(tmp_path, timesteps=128))
    assert load(first).num_timesteps == 128
    resumed = train(config(tmp_path, timesteps=256, resume=True))
    agent = load(resumed)
    assert resumed == first and agent.num_timesteps == 256
    sessions = [json.loads(line) for line in (first / "sessions.jsonl").read_text().splitlines()]
    assert [(s["start_step"], s["end_step"], s["status"]) for s in sessions] == [
        (0, 128, "completed"),
        (128, 256, "completed"),
    ]
    assert len(list((first / "tb").iterdir())) == 1  # the same TensorBoard run continues
    assert load(first, checkpoint=128).num_timesteps == 128
    with pytest.raises(ValueError, match="seed"):
        train(config(tmp_path, timesteps=512, resume=True, seed=1))
    # --resume where nothing was saved starts the run: a run directory is never a dead end
    fresh = train(config(tmp_path / "elsewhere", resume=True, timesteps=64))
    assert load(fresh).num_timesteps == 64


class InterruptAt(BaseCallback):
    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.step:
            raise KeyboardInterrupt
        return True


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_resume_after_interruption(tmp_path, algo):
    cfg = config(tmp_path, algo, timesteps=256, checkpoint_every=0)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, callbacks=[InterruptAt(100)])
    run_dir = cfg.run_dir
    assert [s for s, _ in list_checkpoints(run_dir)] == [100]
    stopped = load(run_dir, checkpoint="latest")
    assert stopped.num_timesteps == 100
    if algo == "sac":  # the replay buffer is checkpointed so off-policy learning resumes intact
        assert (list_checkpoints(run_dir)[-1][1] / "replay_buffer.pkl").is_file()
    result = run(replace(cfg, resume=True))
    try:
        assert result.model.num_timesteps >= 256
        if algo == "sac":
            assert result.model.replay_buffer.size() >= 256 - 1
    finally:
        result.env.close()
    statuses = [
        json.loads(line)["status"] for line in (run_dir / "sessions.jsonl").read_text().splitlines()
    ]
    assert statuses == ["interrupted", "completed"]


def test_same_config_same_model(tmp_path):
    a = load(train(config(tmp_path / "a", out=str(tmp_path / "a"))))
    b = load(train(config(tmp_path / "b", out=str(tmp_path / "b"))))
    for pa, pb in zip(a.model.policy.parameters(), b.model.policy.parameters(), strict=True):
        assert torch.equal(pa, pb)
    np.testing.assert_array_equal(a.vec_normalize.obs_rms.mean, b.vec_normalize.obs_rms.mean)


def test_frame_stacked_attention_agent_replays_the_training_pipeline(tmp_path):
    """Loaded agent fed raw frames == in-memory model behind VecNormalize + VecFrameStack."""
    cfg = config(
        tmp_path,
        env_id=TINY_ID,
        n_stack=3,
        extractor="attention",
        extractor_kwargs={"tokens": "asset_time", "d_model": 8, "n_heads": 2},
    )
    result = run(cfg)
    try:
        venv, model = result.env, result.model
        vec_normalize = model.get_vec_normalize_env()
        vec_normalize.training = False
        agent = load(result.run_dir)
        stacked = venv.reset()
        state, start = None, np.array([True])
        for _ in range(45):  # crosses two episode boundaries (horizon 20)
            raw = vec_normalize.get_original_obs()
            expected, _ = model.predict(stacked, deterministic=True)
            action, state = agent.predict(raw, state, start)
            np.testing.assert_array_equal(action, expected)
            np.testing.assert_allclose(state, stacked, rtol=0, atol=0)
            stacked, _, done, _ = venv.step(action)
            start = done
        window = np.concatenate([vec_normalize.get_original_obs()] * 3, axis=1)
        weights = export_attention(agent, window)
        assert weights.shape == (1, 1, 2, 1 + 4 * 3, 1 + 4 * 3)
        np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    finally:
        result.env.close()


def test_loader_refuses_wrong_input(tmp_path):
    with pytest.raises(ValueError, match="not a trendgym run directory"):
        load(tmp_path)
    agent = load(train(config(tmp_path)))
    with pytest.raises(ValueError, match="observation shape"):
        agent.predict(np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="no model"):
        load(tmp_path / "run", checkpoint=7)
    with pytest.raises(TypeError, match="checkpoint"):
        load(tmp_path / "run", checkpoint=1.5)


def test_config_validation():
    with pytest.raises(ValueError, match="timesteps"):
        TrainConfig(env_id="Pendulum-v1", timesteps=0)
    with pytest.raises(ValueError, match="algo"):
        TrainConfig(env_id="Pendulum-v1", algo="dqn")
    with pytest.raises(ValueError, match="extractor"):
        TrainConfig(env_id="Pendulum-v1", extractor="cnn")
    with pytest.raises(TypeError, match="JSON"):
        TrainConfig(env_id="Pendulum-v1", model_kwargs={"activation_fn": torch.nn.ReLU})
    assert TrainConfig(env_id="trendgym/Execution-v0", seed=2).run_dir == Path(
        "runs/trendgym-Execution-v0-ppo-s2"
    )


def test_portfolio_script_main_returns_the_run_dir(tmp_path):
    from trendgym.train import ppo_portfolio

    args = args_from_cli(
        ppo_portfolio.Args,
        [
            "--env-id",
            TINY_ID,
            "--timesteps",
            "64",
            "--n-envs",
            "1",
            "--out",
            str(tmp_path / "p"),
            "--extractor",
            "attention",
            "--d-model",
            "8",
            "--no-progress-bar",
            "--model-kwargs",
            json.dumps(BUDGET["ppo"]),
        ],
    )
    assert args.progress_bar is False and args.d_model == 8
    run_dir = ppo_portfolio.main(args)
    assert run_dir == tmp_path / "p" and (run_dir / "model.zip").is_file()
    assert load(run_dir).config["extractor"] == "attention"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("trendgym")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "trendgym.train.cli"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=240
    )


def test_cli_trains_end_to_end_with_subprocess_envs(tmp_path):
    done = _cli(
        "train",
        "--env",
        "Pendulum-v1",
        "--algo",
        "ppo",
        "--timesteps",
        "128",
        "--seed",
        "1",
        "--n-envs",
        "2",
        "--out",
        "runs/cli",
        "--no-progress",
        "--checkpoint-every",
        "0",
        "--model-kwargs",
        json.dumps({"n_steps": 32, "batch_size": 32, "policy_kwargs": NET}),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path / "runs" / "cli"
    assert done.stdout.strip().splitlines()[-1] == "runs/cli"
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["n_envs"] == 2 and saved["seed"] == 1 and saved["vec_env"] == "auto"
    agent = load(run_dir)
    assert agent.num_timesteps == 128
    action, _ = agent.predict(np.zeros(3, np.float32))
    assert action.shape == (1,)


def test_cli_reports_bad_input(tmp_path):
    done = _cli("train", "--env", "Pendulum-v1", "--env-kwargs", "[1]", cwd=tmp_path)
    assert done.returncode == 2 and "expected a JSON object" in done.stderr
    done = _cli("train", "--env", "Pendulum-v1", "--timesteps", "0", "--no-progress", cwd=tmp_path)
    assert done.returncode == 2 and "--timesteps: must be a positive int" in done.stderr
    done = _cli("--help", cwd=tmp_path)
    assert done.returncode == 0 and "train" in done.stdout


@pytest.mark.parametrize("env_id", ["trendgym/Execution-v0", "trendgym/Portfolio-v0"])
def test_our_envs_train_save_and_load(tmp_path, env_id):
    """Our two envs with their default extractor and a tiny budget."""
    result = run(
        config(tmp_path, env_id=env_id, timesteps=64, model_kwargs={**BUDGET["ppo"], "n_steps": 32})
    )
    try:
        vec_normalize = result.model.get_vec_normalize_env()
        vec_normalize.training = False
        obs = rollout_obs(result, 3)
        expected, _ = result.model.predict(vec_normalize.normalize_obs(obs), deterministic=True)
        np.testing.assert_array_equal(load(result.run_dir).predict(obs)[0], expected)
    finally:
        result.env.close()
