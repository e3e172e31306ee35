"""trendgym's envs in other RL projects, with those projects' defaults.

Each client that installs here is exercised for real: Gymnasium's render fallbacks, rl-zoo3's
trainer with ``--conf-file trendgym.agents.zoo`` (and its ``enjoy``), TorchRL's
``check_env_specs``, and Tianshou's buffer contract (Tianshou itself needs pandas < 3, so the
contract it enforces is tested directly).
"""

from __future__ import annotations

import os
import subprocess
import sys
from numbers import Number

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

import trendgym  # noqa: F401  (registers the ids)
from trendgym.envs.registration import ENV_IDS

EXEC_SMALL = dict(horizon=8, warmup_seconds=10.0)
PORT_SMALL = dict(n_years=3.0, n_assets=8, warmup=60)
SMALL = {"trendgym/Execution-v0": EXEC_SMALL, "trendgym/Portfolio-v0": PORT_SMALL}


def _python(code: str, timeout: float = 600, **env: str) -> str:
    """Run `code` in a fresh interpreter (this checkout's trendgym); its stdout."""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


# ---------------------------------------------------------------------- Gymnasium
def test_import_is_light_and_each_id_loads_only_its_env():
    out = _python(
        "import sys, gymnasium as gym, trendgym\n"
        "heavy = ('torch', 'stable_baselines3', 'numba', 'pandas')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "gym.make('trendgym/Execution-v0', horizon=8, warmup_seconds=10.0)\n"
        "print(sorted(m for m in ('pandas', 'trendgym.envs.portfolio') if m in sys.modules))\n"
        "from trendgym.envs import ExecutionEnv, PortfolioEnv\n"
        "print(ExecutionEnv.__name__, PortfolioEnv.__name__)\n"
    )
    assert out.splitlines() == ["[]", "[]", "ExecutionEnv PortfolioEnv"]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_sees_the_envs_metadata(env_id):
    spec = gym.spec(env_id)
    creator = gym.envs.registration.load_env_creator(spec.entry_point)
    env = gym.make(env_id, **SMALL[env_id])
    assert creator.metadata is type(env.unwrapped).metadata
    assert "rgb_array" in creator.metadata["render_modes"]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_rgb_array_list_gets_gymnasiums_render_collection(env_id):
    env = gym.make(env_id, render_mode="rgb_array_list", **SMALL[env_id])
    assert isinstance(env, gym.wrappers.RenderCollection)
    env.reset(seed=0)
    for _ in range(3):
        env.step(env.action_space.sample())
    frames = env.render()
    assert len(frames) == 4  # reset + 3 steps
    assert all(f.shape == (200, 320, 3) and f.dtype == np.uint8 for f in frames)
    assert any(f.min() < 255 for f in frames)  # something is drawn


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_human_mode_renders_through_gymnasiums_human_rendering(env_id):
    pytest.importorskip("pygame")
    out = _python(
        "import gymnasium as gym, trendgym\n"
        f"env = gym.make({env_id!r}, render_mode='human', **{SMALL[env_id]!r})\n"
        "env.reset(seed=0); env.step(env.action_space.sample())\n"
        "print(type(env).__name__, env.unwrapped.render_mode)\n",
        SDL_VIDEODRIVER="dummy",  # a display that needs no screen
    )
    assert out.split() == ["HumanRendering", "rgb_array"]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_compliance_keyword_of_make_wraps_the_env(env_id):
    from trendgym.envs.compliance import ComplianceWrapper

    env = gym.make(env_id, compliance={"preset": "strict"}, **SMALL[env_id])
    wrapper = env
    while not isinstance(wrapper, ComplianceWrapper):
        wrapper = wrapper.env
    assert wrapper.env_kind == env.unwrapped.compliance_kind
    _, info = env.reset(seed=0)
    assert info["compliance_violations"] == 0
    with pytest.raises(ValueError, match="wrapped twice"):
        ComplianceWrapper(env.unwrapped)


# ---------------------------------------------------------------------- Tianshou's buffer
def _numeric(value) -> bool:
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "biuf"
    return isinstance(value, (Number, np.number, np.bool_)) and not isinstance(value, complex)


@pytest.mark.parametrize("compliance", [None, "strict"])
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_every_info_has_the_same_numeric_keys_from_reset_on(env_id, compliance):
    """Tianshou's ``ReplayBuffer`` stores each step's info in arrays allocated from the first
    one: a key added later, or a text value, stops the first collect. Portfolio-v0's `date`
    (DESIGN: every info has it) is a ``pd.Timestamp`` every step: one object column. Under
    the compliance wrapper (every rule of the strict preset, which random actions break)
    the same holds, interventions and all."""
    kwargs = dict(SMALL[env_id])
    if env_id == "trendgym/Portfolio-v0":
        kwargs["window"] = 30
    if compliance:
        kwargs["compliance"] = compliance
    env = gym.make(env_id, **kwargs)
    interventions = 0
    for seed in (0, 1):  # two episodes: the terminal info and the next reset's
        _, info = env.reset(seed=seed)
        keys = set(info)
        infos = [info]
        done = False
        while not done:
            _, _, terminated, truncated, info = env.step(env.action_space.sample())
            infos.append(info)
            done = terminated or truncated
        interventions += sum(info.get("compliance", 0) for info in infos)
        for i, info in enumerate(infos):
            assert set(info) == keys, (i, sorted(set(info) ^ keys))
            bad = {
                k: v
                for k, v in info.items()
                if not (_numeric(v) or (k == "date" and isinstance(v, pd.Timestamp)))
            }
            assert not bad, (i, bad)
    if compliance:
        rules = env.get_wrapper_attr("rules")
        assert {f"compliance_{r.name}" for r in rules} <= keys
        assert interventions > 0  # the rare path ran too


# ---------------------------------------------------------------------- TorchRL
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_torchrl_check_env_specs(env_id):
    pytest.importorskip("torchrl")
    from torchrl.envs import GymEnv
    from torchrl.envs.utils import check_env_specs

    env = GymEnv(env_id, **SMALL[env_id])
    check_env_specs(env, seed=0)
    # on through Execution-v0's terminal steps (horizon 8) and TorchRL's resets after them
    rollout = env.rollout(20, break_when_any_done=False)
    assert rollout["next", "reward"].shape == (20, 1)
    done = rollout["next", "done"].squeeze(-1).nonzero().flatten().tolist()
    assert done == ([7, 15] if env_id == "trendgym/Execution-v0" else [])


# ---------------------------------------------------------------------- rl-zoo3
def test_zoo_settings_come_from_the_projects_defaults():
    from trendgym.agents import zoo
    from trendgym.agents.sb3 import ENV_DEFAULTS

    ppo = zoo.settings("ppo", "trendgym/Execution-v0")
    assert ppo["policy"] == "MlpPolicy"
    for key, value in ENV_DEFAULTS["trendgym/Execution-v0"]["ppo"].items():
        assert ppo[key] == value
    port = zoo.settings("ppo", "trendgym/Portfolio-v0", PORT_SMALL)
    assert port["policy"] == "trendgym.agents.policies.CrossSectionalPolicy"
    assert port["policy_kwargs"]["obs_layout"]["n_assets"] == 8
    argv = ["--algo", "a2c", "--env", "trendgym/Portfolio-v0", "--env-kwargs", "window:30"]
    assert zoo.command_line(argv) == (
        "a2c",
        {"window": 30},
    )
    with pytest.raises(LookupError, match="--algo"):
        zoo.command_line([])
    with pytest.raises(ValueError, match="algo"):
        zoo.settings("dqn", "trendgym/Execution-v0")


_ZOO_RUNS = """
import sys
from rl_zoo3.train import train
for algo, env_id, n, env_kwargs in {runs!r}:
    sys.argv = ["rl_zoo3.train", "--algo", algo, "--env", env_id, "--gym-packages", "trendgym",
                "--conf-file", "trendgym.agents.zoo", "-n", str(n), "--eval-freq", "-1",
                "-f", {folder!r}, "--seed", "0", "--verbose", "0",
                "--env-kwargs", *env_kwargs]
    train()
    print("trained", algo, env_id)
"""


@pytest.fixture(scope="module")
def zoo_runs(tmp_path_factory):
    """rl-zoo3's trainer, every algorithm on both envs (tiny budgets), in one process."""
    pytest.importorskip("rl_zoo3")
    folder = tmp_path_factory.mktemp("zoo")
    runs = [
        (algo, env_id, n, ZOO_SMALL[env_id])
        for env_id in ENV_IDS
        for algo, n in (("ppo", 512), ("sac", 64), ("a2c", 64))
    ]
    return folder, _python(_ZOO_RUNS.format(runs=runs, folder=str(folder)), timeout=1200)


ZOO_SMALL = {
    "trendgym/Execution-v0": ["horizon:8", "warmup_seconds:10.0"],
    "trendgym/Portfolio-v0": ["n_years:3.0", "n_assets:8", "warmup:60", "window:30"],
}


def test_rl_zoo3_trains_every_algo_on_both_envs_with_the_shipped_settings(zoo_runs):
    folder, out = zoo_runs
    assert out.count("trained") == 6, out
    for algo in ("ppo", "sac", "a2c"):
        for env_id in ENV_IDS:
            name = env_id.replace("/", "-")
            run = folder / algo / f"{name}_1"
            assert (run / f"{name}.zip").is_file()
            config = (run / name / "config.yml").read_text()
            shared_actor = env_id == "trendgym/Portfolio-v0" and algo != "sac"
            assert ("CrossSectionalPolicy" in config) == shared_actor


def test_rl_zoo3_enjoy_renders_without_no_render(zoo_runs):
    pytest.importorskip("pygame")
    folder, _ = zoo_runs
    out = subprocess.run(
        [sys.executable, "-m", "rl_zoo3.enjoy", "--algo", "a2c", "--env",
         "trendgym/Execution-v0", "--gym-packages", "trendgym", "-f", str(folder),
         "--exp-id", "1", "-n", "20", "--env-kwargs", *ZOO_SMALL["trendgym/Execution-v0"]],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "SDL_VIDEODRIVER": "dummy"},  # a display that needs no screen
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Episode Length 8" in out.stdout
