"""The Execution-v0 walk-forward domain: folds are blocks of held-out episode seeds."""

from __future__ import annotations

from typing import Any

import numpy as np

from trendgym.evaluate.walkforward.config import WalkForwardConfig, cost_label, with_env_kwargs
from trendgym.evaluate.walkforward.domain import make_env, register_domain
from trendgym.evaluate.walkforward.plan import Block, FoldPlan

__all__ = ["ExecutionDomain"]


class ExecutionDomain:
    """Execution-v0: folds are disjoint blocks of held-out episode seeds.

    Training draws its episodes from the env's own generator (seeded by the trial seed);
    validation and OOS episodes use ``reset(seed=...)`` with seeds from ranges that training
    never passes. One period = one episode, its "return" = -shortfall_bps / 1e4; a trial is
    scored by its per-episode savings against the best baseline on the same episodes
    (``paired``), since episodes differ far more than policies do. Costs scale the fee
    (``fee_bps``); spread and impact come from the simulated book and are never scaled.
    """

    name = "execution"
    periods_per_year = None
    paired = True
    # the wall-time estimate's rates: one core, PPO with the CLI's defaults (estimate.py)
    train_steps_per_second = 1150.0
    native_steps_per_second = 1300.0
    score_seconds_per_period = 0.025  # one episode
    VALIDATION_SEEDS = 500_000
    TEST_SEEDS = 1_000_000

    def plan(self, config: WalkForwardConfig) -> list[FoldPlan]:
        env = make_env("trendgym/Execution-v0", config.env_kwargs).unwrapped
        fee = float(config.env_kwargs.get("fee_bps", env.fee_bps))
        n = config.episodes
        n_val = max(
            2, int(round(n * config.validation_fraction / (1 - config.validation_fraction)))
        )
        plans = []
        for k in range(config.n_folds):
            test_seeds = tuple(range(self.TEST_SEEDS + k * n, self.TEST_SEEDS + (k + 1) * n))
            val_seeds = tuple(
                range(self.VALIDATION_SEEDS + k * n_val, self.VALIDATION_SEEDS + (k + 1) * n_val)
            )
            tests = {
                cost_label(m): Block({**config.env_kwargs, "fee_bps": fee * m}, test_seeds)
                for m in config.cost_multipliers
            }
            plans.append(
                FoldPlan(
                    fold=k,
                    train_kwargs=dict(config.env_kwargs),
                    validation=Block(dict(config.env_kwargs), val_seeds),
                    tests=tests,
                    period_index=test_seeds,
                    describe={
                        "train": "episodes from the env's generator (trial seed)",
                        "validation": f"seeds {val_seeds[0]}..{val_seeds[-1]}",
                        "test": f"seeds {test_seeds[0]}..{test_seeds[-1]}",
                    },
                )
            )
        return plans

    def episode_returns(self, env: Any, policy: Any, seed: int) -> np.ndarray:
        obs, info = env.reset(seed=seed)
        state, start, done = None, np.ones((1,), dtype=bool), False
        while not done:
            action, state = policy.predict(
                obs, state=state, episode_start=start, deterministic=True
            )
            start = np.zeros((1,), dtype=bool)
            obs, _reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        return np.array([-float(info["shortfall_bps"]) * 1e-4])

    def baselines(self, env: Any) -> dict[str, Any]:
        from trendgym.agents.execution import TWAP, VWAP, AlmgrenChriss

        return {"TWAP": TWAP(env), "VWAP": VWAP(env), "AlmgrenChriss": AlmgrenChriss(env)}

    def placebos(self, config: WalkForwardConfig) -> list[WalkForwardConfig]:
        """The same search, book and episodes with the observation replaced by noise: what
        the search finds when there is nothing to read, scored against the same baseline."""
        return [
            with_env_kwargs(
                config, config.env_kwargs, experiment=f"{config.experiment}/placebo", blind=True
            )
        ]


register_domain("trendgym/Execution-v0", ExecutionDomain)
