"""How walk-forward evaluation meets one kind of env: the Domain protocol and its registry.

A *domain* turns an env id into folds, cost multipliers, baselines and per-period returns.
The built-in domains (Portfolio-v0, Execution-v0) register themselves when
``trendgym.evaluate.walkforward`` is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from trendgym.evaluate.walkforward.plan import Block, FoldPlan

if TYPE_CHECKING:
    from trendgym.evaluate.walkforward.config import WalkForwardConfig

__all__ = [
    "Domain",
    "block_returns",
    "domain_for",
    "episodes_returns",
    "make_env",
    "register_domain",
]


class Domain(Protocol):
    """How walk-forward evaluation meets one kind of env."""

    name: str
    periods_per_year: float | None  # for annualised Sharpe; None: per-episode statistics
    # True: a trial is scored by its per-period advantage over the best baseline on the same
    # periods (paired), as execution episodes differ far more than policies do
    paired: bool
    # one core's PPO training rate with envs stepped one after the other, and with a native
    # batched env; seconds to score one period (an episode, a day): the wall-time estimate
    train_steps_per_second: float
    native_steps_per_second: float
    score_seconds_per_period: float

    def plan(self, config: WalkForwardConfig) -> list[FoldPlan]: ...

    def episode_returns(self, env: Any, policy: Any, seed: int) -> np.ndarray: ...

    def baselines(self, env: Any) -> dict[str, Any]: ...

    def placebos(self, config: WalkForwardConfig) -> list[WalkForwardConfig]:
        """The same search where nothing can be learned, each under its own experiment."""
        ...


_DOMAINS: dict[str, Callable[[], Domain]] = {}


def register_domain(env_id: str, factory: Callable[[], Domain]) -> None:
    """Plug an env id into the runner (``factory()`` builds its :class:`Domain`)."""
    _DOMAINS[env_id] = factory


def domain_for(env_id: str) -> Domain:
    env_id = env_id.removeprefix("trendgym:")
    if env_id not in _DOMAINS:
        raise ValueError(
            f"no walk-forward domain for env id {env_id!r}; registered: {sorted(_DOMAINS)}"
        )
    return _DOMAINS[env_id]()


def refuse_test_env_kwargs(env_id: str, test_env_kwargs: Any, flag: str) -> None:
    """ValueError naming `flag` when `test_env_kwargs` are given to a domain that has no use
    for them (its ``test_env_kwargs_refusal`` says why); an env id without a domain too."""
    refusal = getattr(domain_for(env_id), "test_env_kwargs_refusal", None)
    if refusal and test_env_kwargs is not None:
        raise ValueError(f"{flag}: {refusal}")


def make_env(env_id: str, env_kwargs: Mapping[str, Any], blind: bool = False) -> Any:
    """``gym.make`` in any process; `blind` replaces its observations by noise."""
    import gymnasium as gym

    import trendgym  # noqa: F401  (registers the ids in a fresh worker)
    from trendgym.envs.blind import BlindObservation

    env = gym.make(env_id, **dict(env_kwargs))
    return BlindObservation(env) if blind else env


def block_returns(
    domain: Domain, env_id: str, block: Block, policy: Any, blind: bool = False
) -> np.ndarray:
    """Per-period returns of `policy` over a block (its episodes, in seed order)."""
    env = make_env(env_id, block.env_kwargs, blind)
    try:
        return episodes_returns(domain, env, policy, block.episode_seeds)
    finally:
        env.close()


def episodes_returns(domain: Domain, env: Any, policy: Any, seeds: Sequence[int]) -> np.ndarray:
    return np.concatenate([domain.episode_returns(env, policy, int(s)) for s in seeds])
