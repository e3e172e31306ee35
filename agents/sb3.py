"""Stable-Baselines3 model factories with per-env defaults and extractor wiring.

``make_model("ppo", env, seed=0)`` builds a PPO/SAC/A2C model for any Gymnasium env id; the
defaults come from :data:`ENV_DEFAULTS` (our two env ids, then a generic fallback ``"*"``) and
every keyword you pass overrides them (``policy_kwargs`` is merged key by key). ``policy=``
picks SB3's ``"mlp"`` policy or ``"cross_sectional"`` (:mod:`trendgym.agents.policies`, the
portfolio default: one actor shared by every asset).

RecurrentPPO (sb3-contrib) is deliberately not offered: ``LSTMExtractor`` over a stacked window
gives PPO/SAC/A2C memory without recurrent state to carry through evaluation, and keeps one
dependency less.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3 import A2C, PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack, VecNormalize
from torch import nn

from trendgym.agents.extractors import (
    _ACTIVATIONS,
    AttentionExtractor,
    LSTMExtractor,
    MLPExtractor,
    ObsLayout,
)
from trendgym.agents.policies import CrossSectionalPolicy

ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC, "a2c": A2C}
EXTRACTORS: dict[str, type] = {
    "mlp": MLPExtractor,
    "lstm": LSTMExtractor,
    "attention": AttentionExtractor,
}
# ``policy=`` names (JSON-friendly, so a TrainConfig's model_kwargs can choose one)
POLICIES: dict[str, Any] = {"mlp": "MlpPolicy", "cross_sectional": CrossSectionalPolicy}
_CROSS_SECTIONAL_KEYS = frozenset({"context", "obs_layout", "n_stack"})

# Execution: cost is realised late (forced completion at the horizon), hence gamma near 1;
# a narrow initial action noise avoids random market orders dominating early rollouts.
# (30k steps beat TWAP by ~40 bp at urgency 0.8: tests/test_learning.py.)
# Portfolio, tuned on issue 6 (train on 75% of dates, Sharpe on the held-out 25%): an
# MlpPolicy over all 24 assets memorises the training years (in-sample Sharpe ~2, OOS < 0)
# whatever its reward scale, noise or gamma; see trendgym.agents.policies.
ENV_DEFAULTS: dict[str, dict[str, Any]] = {
    "trendgym/Execution-v0": {
        "extractor": None,
        "ppo": dict(
            n_steps=512,
            batch_size=128,
            n_epochs=10,
            learning_rate=3e-4,
            gamma=0.995,
            gae_lambda=0.95,
            ent_coef=0.005,
            clip_range=0.2,
            policy_kwargs=dict(net_arch=[64, 64], log_std_init=-0.5),
        ),
        "sac": dict(
            learning_rate=3e-4,
            buffer_size=100_000,
            batch_size=256,
            learning_starts=1_000,
            gamma=0.995,
            tau=0.005,
            policy_kwargs=dict(net_arch=[64, 64]),
        ),
        "a2c": dict(
            n_steps=32,
            learning_rate=7e-4,
            gamma=0.995,
            ent_coef=0.005,
            policy_kwargs=dict(net_arch=[64, 64], log_std_init=-0.5),
        ),
    },
    "trendgym/Portfolio-v0": {
        # attention stays the id's default extractor (Momentum Transformer experiments); the
        # setting that generalises is extractor=None + the context-free cross-sectional policy
        "extractor": "attention",
        "ppo": dict(
            # one shared actor maps each asset's own features to its weight (TSMOM-shaped)
            policy="cross_sectional",
            n_steps=512,
            batch_size=128,
            n_epochs=10,
            learning_rate=1e-4,
            gamma=0.5,  # a weight mostly earns today's return; the next day's cost is all it shapes
            gae_lambda=0.5,  # short advantages: long sums of daily noise drown the trend signal
            ent_coef=0.0,
            clip_range=0.2,
            max_grad_norm=0.5,
            policy_kwargs=dict(
                net_arch=dict(pi=[32], vf=[64]),
                # std 0.08: exploration is real trading (costs); -1 scored the same OOS once
                # the actor was shared (issue 6 ablation), so this is caution, not the fix
                log_std_init=-2.5,
                context=False,  # globals and other assets let it memorise dates (OOS < 0)
            ),
        ),
        "sac": dict(
            learning_rate=1e-4,
            buffer_size=50_000,
            batch_size=256,
            learning_starts=1_000,
            gamma=0.9,
            policy_kwargs=dict(net_arch=[64]),
        ),
        "a2c": dict(
            policy="cross_sectional",  # as ppo
            n_steps=32,
            learning_rate=1e-4,
            gamma=0.5,
            gae_lambda=0.5,
            ent_coef=0.0,
            policy_kwargs=dict(net_arch=dict(pi=[32], vf=[64]), log_std_init=-2.5, context=False),
        ),
    },
    "*": {
        "extractor": None,
        "ppo": dict(policy_kwargs=dict(net_arch=[64, 64])),
        "sac": dict(buffer_size=100_000, policy_kwargs=dict(net_arch=[64, 64])),
        "a2c": dict(policy_kwargs=dict(net_arch=[64, 64])),
    },
}


def algo_class(algo: str) -> type[BaseAlgorithm]:
    """The SB3 class for an algorithm name ("ppo", "sac", "a2c")."""
    if not isinstance(algo, str) or algo.lower() not in ALGOS:
        raise ValueError(f"algo must be one of {sorted(ALGOS)}, got {algo!r}")
    return ALGOS[algo.lower()]


def default_hyperparameters(env_id: str | None, algo: str) -> dict[str, Any]:
    """A fresh copy of the defaults for ``algo`` on ``env_id`` (generic ones for unknown ids)."""
    algo_class(algo)
    entry = ENV_DEFAULTS.get(env_id or "*", ENV_DEFAULTS["*"])
    return copy.deepcopy(entry[algo.lower()])


def default_extractor(env_id: str | None) -> str | None:
    return ENV_DEFAULTS.get(env_id or "*", ENV_DEFAULTS["*"])["extractor"]


def env_id_of(env: gym.Env | VecEnv) -> str | None:
    """The registered id of a (vectorised, wrapped) env, or None."""
    try:
        if isinstance(env, VecEnv):
            spec = env.get_attr("spec", [0])[0] if env.has_attr("spec") else None
        else:
            spec = env.spec
    except (AttributeError, IndexError):
        return None
    return None if spec is None else spec.id


def obs_layout_of(env: gym.Env | VecEnv) -> dict[str, Any] | None:
    """The env's ``unwrapped.obs_layout`` (portfolio contract), or None when it has none."""
    try:
        if isinstance(env, VecEnv):
            # has_attr first: a failing get_attr kills a SubprocVecEnv worker
            layout = env.get_attr("obs_layout", [0])[0] if env.has_attr("obs_layout") else None
        else:
            layout = getattr(env.unwrapped, "obs_layout", None)
    except AttributeError:
        return None
    return None if layout is None else ObsLayout.coerce(layout).to_dict()


def n_stack_of(env: gym.Env | VecEnv) -> int:
    """How many frames a ``VecFrameStack`` in the wrapper chain stacks (1 if none)."""
    while isinstance(env, VecEnv):
        if isinstance(env, VecFrameStack):
            return int(env.stacked_obs.n_stack)
        env = getattr(env, "venv", None)
    return 1


class MaskAwareVecNormalize(VecNormalize):
    """``VecNormalize`` that leaves the asset-mask columns raw (0/1), so extractors can read them.

    ``raw_indices`` are flat indices within one observation frame.
    """

    def __init__(self, venv: VecEnv, raw_indices: Any = (), **kwargs: Any) -> None:
        super().__init__(venv, **kwargs)
        self.raw_indices = np.asarray(raw_indices, dtype=np.int64)

    def _normalize_obs(self, obs: np.ndarray, obs_rms: RunningMeanStd) -> np.ndarray:
        out = super()._normalize_obs(obs, obs_rms)
        if self.raw_indices.size:
            out[..., self.raw_indices] = obs[..., self.raw_indices]
        return out

    def _unnormalize_obs(self, obs: np.ndarray, obs_rms: RunningMeanStd) -> np.ndarray:
        out = super()._unnormalize_obs(obs, obs_rms)
        if self.raw_indices.size:
            out[..., self.raw_indices] = obs[..., self.raw_indices]
        return out


def normalize_env(
    venv: VecEnv,
    *,
    norm_obs: bool = True,
    norm_reward: bool = False,
    gamma: float = 0.99,
    obs_layout: Mapping[str, Any] | None = None,
) -> MaskAwareVecNormalize:
    """Wrap ``venv`` in observation (and optionally reward) normalisation, masks kept raw."""
    raw = ObsLayout.coerce(obs_layout).mask_indices() if obs_layout is not None else ()
    return MaskAwareVecNormalize(
        venv, raw_indices=raw, norm_obs=norm_obs, norm_reward=norm_reward, gamma=gamma
    )


def merge_model_kwargs(defaults: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(defaults)
    for key, value in overrides.items():
        if key == "policy_kwargs" and isinstance(value, Mapping):
            merged["policy_kwargs"] = {**merged.get("policy_kwargs", {}), **value}
        else:
            merged[key] = value
    return merged


def per_env_rollout(
    env_id: str | None, algo: str, n_envs: int, model_kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """`model_kwargs` with ``n_steps`` (per env, SB3's meaning) set so that `n_envs` envs
    collect the rollout the defaults collect with one env, unless `model_kwargs` name it.

    The defaults were tuned on one env; 8 envs at the same ``n_steps`` would collect 8x the
    samples per update, and so make 8x fewer updates in the same budget.
    """
    if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
        raise ValueError(f"n_envs must be a positive int, got {n_envs!r}")
    out = dict(model_kwargs)
    rollout = default_hyperparameters(env_id, algo).get("n_steps")
    if "n_steps" in out or rollout is None or n_envs == 1:
        return out
    out["n_steps"] = max(1, rollout // n_envs)
    return out


def make_model(
    algo: str,
    env: gym.Env | VecEnv | str,
    seed: int | None = 0,
    *,
    env_id: str | None = None,
    extractor: str | type | None = "default",
    extractor_kwargs: Mapping[str, Any] | None = None,
    obs_layout: Mapping[str, Any] | None = None,
    n_stack: int | None = None,
    device: str = "cpu",
    verbose: int = 0,
    tensorboard_log: str | None = None,
    **overrides: Any,
) -> BaseAlgorithm:
    """Build an SB3 model for ``env`` with defaults for its env id, overridable by keyword.

    Parameters
    ----------
    algo : "ppo", "sac" or "a2c" (SAC needs a Box action space).
    env : a Gymnasium env, a VecEnv (possibly normalised / frame-stacked) or an env id.
    seed : seeds the model, its action space and the env.
    env_id : which defaults to use; read from the env's spec when omitted.
    extractor : "mlp", "lstm", "attention", a ``BaseFeaturesExtractor`` class, None (SB3's
        flatten) or "default" (the env id's default).
    extractor_kwargs : passed to the extractor; ``obs_layout`` and ``n_stack`` are filled in.
    obs_layout : portfolio layout; read from ``env.unwrapped.obs_layout`` when omitted.
    n_stack : frames stacked in the observation; read from a ``VecFrameStack`` when omitted.
    **overrides : any SB3 constructor keyword (``policy_kwargs`` merged with the defaults);
        ``policy_kwargs["activation_fn"]`` may be a name ("tanh", "relu", "elu", "gelu").
    """
    cls = algo_class(algo)
    if isinstance(env, str):
        env = gym.make(env)
    env_id = env_id if env_id is not None else env_id_of(env)
    if cls is SAC and not isinstance(env.action_space, spaces.Box):
        raise ValueError(
            f"sac needs a Box action space, {env_id or 'the env'} has {env.action_space}"
        )
    kwargs = merge_model_kwargs(default_hyperparameters(env_id, algo), overrides)
    policy_name = kwargs.pop("policy", "mlp")
    if policy_name not in POLICIES:
        raise ValueError(f"policy must be one of {sorted(POLICIES)}, got {policy_name!r}")
    if policy_name == "cross_sectional" and cls is SAC:
        raise ValueError("policy 'cross_sectional' is an actor-critic policy for ppo/a2c, not sac")
    policy_kwargs = dict(kwargs.pop("policy_kwargs", {}))
    if policy_name != "cross_sectional":  # the defaults' cross-sectional keys do not apply
        own = overrides.get("policy_kwargs") or {}
        for key in _CROSS_SECTIONAL_KEYS - set(own):
            policy_kwargs.pop(key, None)
    activation = policy_kwargs.get("activation_fn")
    if isinstance(activation, str):
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation_fn must be one of {sorted(_ACTIVATIONS)}, got {activation!r}"
            )
        policy_kwargs["activation_fn"] = _ACTIVATIONS[activation]
    elif activation is not None and not (
        isinstance(activation, type) and issubclass(activation, nn.Module)
    ):
        raise TypeError(f"activation_fn must be a name or an nn.Module class, got {activation!r}")

    if extractor == "default":
        extractor = default_extractor(env_id)
    if extractor is not None:
        if isinstance(extractor, str):
            if extractor not in EXTRACTORS:
                raise ValueError(
                    f"extractor must be one of {sorted(EXTRACTORS)}, got {extractor!r}"
                )
            extractor_cls = EXTRACTORS[extractor]
        else:
            extractor_cls = extractor
        ex_kwargs = dict(extractor_kwargs or {})
        if extractor_cls in (MLPExtractor, LSTMExtractor, AttentionExtractor):
            layout = obs_layout if obs_layout is not None else obs_layout_of(env)
            if layout is None and extractor_cls is AttentionExtractor:
                raise ValueError(
                    f"extractor 'attention' needs an obs_layout; {env_id or 'the env'} has no "
                    "unwrapped.obs_layout and none was passed"
                )
            ex_kwargs.setdefault(
                "obs_layout", None if layout is None else ObsLayout.coerce(layout).to_dict()
            )
            ex_kwargs.setdefault("n_stack", n_stack if n_stack is not None else n_stack_of(env))
        policy_kwargs["features_extractor_class"] = extractor_cls
        policy_kwargs["features_extractor_kwargs"] = ex_kwargs
    elif extractor_kwargs:
        raise ValueError("extractor_kwargs given without an extractor")

    if policy_name == "cross_sectional" and policy_kwargs.get("features_extractor_class") not in (
        None,
        AttentionExtractor,
    ):
        raise ValueError(
            f"policy 'cross_sectional' works with extractor None or 'attention', got {extractor!r}"
            " (pass policy='mlp' for the others)"
        )
    if policy_name == "cross_sectional" and extractor is None:
        # the shared per-asset actor splits the flat observation by the env's layout
        layout = obs_layout if obs_layout is not None else obs_layout_of(env)
        if layout is None:
            raise ValueError(
                f"policy 'cross_sectional' needs an obs_layout; {env_id or 'the env'} has none"
            )
        policy_kwargs.setdefault("obs_layout", ObsLayout.coerce(layout).to_dict())
        policy_kwargs.setdefault("n_stack", n_stack if n_stack is not None else n_stack_of(env))
    return cls(
        POLICIES[policy_name],
        env,
        seed=seed,
        device=device,
        verbose=verbose,
        tensorboard_log=tensorboard_log,
        policy_kwargs=policy_kwargs,
        **kwargs,
    )
