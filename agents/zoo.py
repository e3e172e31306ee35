"""Tuned hyperparameters in rl-zoo3's format, so its trainer runs trendgym's settings.

    python -m rl_zoo3.train --algo ppo --env trendgym/Execution-v0 --gym-packages trendgym \\
        --conf-file trendgym.agents.zoo

(also ``--algo sac`` / ``a2c`` and ``--env trendgym/Portfolio-v0``). rl-zoo3 reads the
module's ``hyperparams``: env id -> settings. One module serves every algorithm, so the
settings are those of the ``--algo`` on rl-zoo3's command line; `for_algo` gives them
without one. They come from `trendgym.agents.sb3.ENV_DEFAULTS` (what ``make_model`` and the
training scripts use), with the project's policies named by import path, which rl-zoo3
imports: ``"trendgym.agents.policies.CrossSectionalPolicy"`` for Portfolio-v0's PPO/A2C
(one actor shared by every asset), whose ``obs_layout`` is read from the env that the
settings' ``env_kwargs`` make.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from trendgym.agents.sb3 import ALGOS, ENV_DEFAULTS

ENV_IDS = ("trendgym/Execution-v0", "trendgym/Portfolio-v0")
CROSS_SECTIONAL = "trendgym.agents.policies.CrossSectionalPolicy"
_CROSS_SECTIONAL_KEYS = ("context", "obs_layout", "n_stack")

# what the training scripts use besides the model's keywords (train/ppo_*.py): budgets,
# env settings and observation normalisation (Execution-v0's rewards are bps, O(1-10))
_RUN = {
    "trendgym/Execution-v0": dict(n_timesteps=30_000, n_envs=1, env_kwargs={}),
    "trendgym/Portfolio-v0": dict(n_timesteps=50_000, n_envs=1, env_kwargs={"window": 252}),
}
_NORMALIZE = "dict(norm_obs=True, norm_reward=False)"


def _obs_layout(env_id: str, env_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    import gymnasium as gym

    import trendgym  # noqa: F401  (registers the ids)

    env = gym.make(env_id, **env_kwargs)
    try:
        return dict(env.unwrapped.obs_layout)
    finally:
        env.close()


def settings(algo: str, env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """rl-zoo3's settings for `algo` on `env_id` (a fresh copy: rl-zoo3 edits them);
    `env_kwargs` (rl-zoo3's ``--env-kwargs``) update the settings' own."""
    if algo not in ALGOS:
        raise ValueError(f"algo must be one of {sorted(ALGOS)}, got {algo!r}")
    if env_id not in _RUN:
        raise ValueError(f"env_id must be one of {list(_RUN)}, got {env_id!r}")
    out = copy.deepcopy(_RUN[env_id])
    out["env_kwargs"].update(env_kwargs or {})
    model = copy.deepcopy(ENV_DEFAULTS[env_id][algo])
    policy = model.pop("policy", "mlp")
    policy_kwargs = model.pop("policy_kwargs", {})
    if policy == "cross_sectional":
        out["policy"] = CROSS_SECTIONAL
        policy_kwargs["obs_layout"] = _obs_layout(env_id, out["env_kwargs"])
    else:
        out["policy"] = "MlpPolicy"
        for key in _CROSS_SECTIONAL_KEYS:
            policy_kwargs.pop(key, None)
    out["normalize"] = _NORMALIZE
    out.update(model)
    out["policy_kwargs"] = policy_kwargs
    return out


def for_algo(algo: str) -> dict[str, dict[str, Any]]:
    """Every env id's rl-zoo3 settings for `algo` (``"ppo"``, ``"sac"``, ``"a2c"``)."""
    return {env_id: settings(algo, env_id) for env_id in ENV_IDS}


def command_line(argv: list[str] | None = None) -> tuple[str, dict[str, Any]]:
    """The ``--algo`` and ``--env-kwargs`` of rl-zoo3's command line (`argv`, default
    ``sys.argv``)."""
    import argparse

    from rl_zoo3.utils import StoreDict

    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--algo")
    parser.add_argument("--env-kwargs", nargs="+", action=StoreDict, default={})
    known, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if known.algo is None:
        raise LookupError(
            "trendgym.agents.zoo.hyperparams follows rl-zoo3's --algo, and the command line "
            "has none; use trendgym.agents.zoo.for_algo(algo)"
        )
    return known.algo, known.env_kwargs


class _Hyperparams(Mapping):
    """rl-zoo3's ``hyperparams``: env id -> the settings of the command line's algorithm,
    built when asked for (Portfolio-v0's read its env's layout)."""

    def __getitem__(self, env_id: str) -> dict[str, Any]:
        if env_id not in _RUN:
            raise KeyError(env_id)
        algo, env_kwargs = command_line()
        return settings(algo, env_id, env_kwargs)

    def __iter__(self) -> Iterator[str]:
        return iter(ENV_IDS)

    def __len__(self) -> int:
        return len(ENV_IDS)


hyperparams = _Hyperparams()
