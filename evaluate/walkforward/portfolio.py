"""The Portfolio-v0 walk-forward domain: folds over dates, one deterministic walk per block."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from trendgym.evaluate.splits import walk_forward_splits
from trendgym.evaluate.walkforward.config import WalkForwardConfig, cost_label, with_env_kwargs
from trendgym.evaluate.walkforward.domain import make_env, register_domain
from trendgym.evaluate.walkforward.plan import Block, FoldPlan

__all__ = ["PortfolioDomain", "portfolio_episode_returns"]


class PortfolioDomain:
    """Portfolio-v0: folds are blocks of decision dates after the features' warm-up.

    The training env is restricted with ``start``/``end`` so its last return is realised at
    the close where the validation block starts; validation and OOS blocks are one walk
    each (``window=None``). Costs scale the proportional costs and the impact coefficient.
    """

    name = "portfolio"
    paired = False
    # the wall-time estimate's rates: one core, PPO with the CLI's defaults (estimate.py)
    train_steps_per_second = 300.0
    native_steps_per_second = 410.0
    score_seconds_per_period = 0.0005  # one day
    test_env_kwargs_refusal = (
        "Portfolio-v0 splits one price history in time (train on its past, test on its later "
        "dates), so held-out blocks on other data have no dates to split: give the data in "
        "env_kwargs and leave test_env_kwargs unset"
    )

    def __init__(self) -> None:
        from trendgym.envs.market.calendar import BUSINESS_DAYS_PER_YEAR

        self.periods_per_year = float(BUSINESS_DAYS_PER_YEAR)

    def _universe(self, env_kwargs: Mapping[str, Any]) -> Any:
        # the whole span (window=None): the universe's dates, not a training window
        kwargs = {**{k: v for k, v in env_kwargs.items() if k != "window"}, "window": None}
        return make_env("trendgym/Portfolio-v0", kwargs).unwrapped

    def cost_kwargs(self, env: Any, env_kwargs: Mapping[str, Any], multiplier: float) -> dict:
        kwargs = dict(env_kwargs)
        kwargs["costs_bps"] = {
            str(a): float(c) * multiplier for a, c in zip(env.assets, env.costs_bps, strict=True)
        }
        kwargs["impact_coef"] = float(env_kwargs.get("impact_coef", 1.0)) * multiplier
        return kwargs

    def plan(self, config: WalkForwardConfig) -> list[FoldPlan]:
        if config.test_env_kwargs is not None:
            raise ValueError(f"test_env_kwargs: {self.test_env_kwargs_refusal}")
        env = self._universe(config.env_kwargs)
        base = {k: v for k, v in config.env_kwargs.items() if k not in ("window", "start", "end")}
        walk = {**base, "window": None}  # validation and OOS blocks walk their whole span
        first, last = env._span
        dates = pd.DatetimeIndex(env.prices.index)
        n = last - first  # decision rows first .. last-1; each earns its next close's return
        gap = config.purge + config.embargo
        folds = walk_forward_splits(
            n,
            n_splits=config.n_folds,
            train_size=max(1, n // (config.n_folds + 1)),
            mode=config.mode,
            purge=config.purge,
            embargo=config.embargo,
        )

        def iso(row: int) -> str:
            return dates[first + row].isoformat()

        def span(a: int, b: int) -> dict[str, str]:
            # decisions at rows a..b-1 (relative to `first`); the env's end is the close of b
            return {"start": iso(a), "end": iso(b)}

        plans = []
        for f in folds:
            a, b = f.train_start, f.train_stop
            v = a + int(round((1.0 - config.validation_fraction) * (b - a)))
            sub_stop = v - gap
            if sub_stop - a < 2 or b - v < 2:
                raise ValueError(
                    f"fold {f.fold}: training span of {b - a} days is too short to hold out a "
                    f"validation tail of {config.validation_fraction:.0%} with a gap of {gap}"
                )
            steps = sub_stop - a
            train_kwargs = {**base, **span(a, sub_stop), "window": min(config.train_window, steps)}
            tests = {
                cost_label(m): Block(
                    self.cost_kwargs(env, {**walk, **span(f.test_start, f.test_stop)}, m)
                )
                for m in config.cost_multipliers
            }
            plans.append(
                FoldPlan(
                    fold=f.fold,
                    train_kwargs=train_kwargs,
                    validation=Block({**walk, **span(v, b)}),
                    tests=tests,
                    period_index=tuple(iso(r + 1) for r in range(f.test_start, f.test_stop)),
                    describe={
                        "train": f"{iso(a)[:10]} .. {iso(sub_stop)[:10]}",
                        "validation": f"{iso(v)[:10]} .. {iso(b)[:10]}",
                        "test": f"{iso(f.test_start)[:10]} .. {iso(f.test_stop)[:10]}",
                        "train_days": steps,
                        "validation_days": b - v,
                        "test_days": f.test_stop - f.test_start,
                    },
                )
            )
        return plans

    def episode_returns(self, env: Any, policy: Any, seed: int) -> np.ndarray:
        return portfolio_episode_returns(env, policy, seed)

    def baselines(self, env: Any) -> dict[str, Any]:
        from trendgym.agents.portfolio import (
            CSMOM,
            EqualWeight,
            RiskParity,
            RiskParityTrend,
            StaticTSMOM,
        )

        return {
            "StaticTSMOM": StaticTSMOM(env),
            "CSMOM": CSMOM(env),
            "EqualWeight": EqualWeight(env),
            "RiskParity": RiskParity(env),
            "RiskParityTrend": RiskParityTrend(env),
        }

    def placebos(self, config: WalkForwardConfig) -> list[WalkForwardConfig]:
        """`placebo_markets` driftless random walks of the test market's shape, length and
        costs, each from a data seed other than the test market's (so on a random-walk test
        market the placebos are other random walks, never the test market itself)."""
        env = self._universe(config.env_kwargs)
        n_days, n_assets = env.prices.shape
        from trendgym.envs.market.calendar import BUSINESS_DAYS_PER_YEAR

        keep = {k: v for k, v in config.env_kwargs.items() if k not in DATA_KEYS}
        names = [f"RW{i + 1:02d}" for i in range(n_assets)]
        market = {
            **keep,
            "preset": "random_walk",
            "n_years": n_days / BUSINESS_DAYS_PER_YEAR,
            "n_assets": n_assets,
            "costs_bps": {a: float(c) for a, c in zip(names, env.costs_bps, strict=True)},
        }
        data_seed = int(config.env_kwargs.get("data_seed", 0))
        return [
            with_env_kwargs(
                config,
                {**market, "data_seed": data_seed + 1 + k},
                experiment=f"{config.experiment}/placebo",
            )
            for k in range(config.placebo_markets)
        ]


# the Portfolio-v0 kwargs that choose the market data: a placebo market, or the survivors of a
# universe, replaces them all and keeps the rest (leverage, vol target, impact, ...)
DATA_KEYS = (
    "prices",
    "preset",
    "data_seed",
    "n_assets",
    "n_years",
    "costs_bps",
    "delisting_returns",
    "signals",
    "start",
    "end",
    "window",
)


def portfolio_episode_returns(env: Any, policy: Any, seed: int | None = 0) -> np.ndarray:
    """Per-step net returns of one episode, from the NAV in each step's info.

    A wiped-out NAV ends the episode with a -100% step; the rest of the block earns 0 then.
    """
    obs, info = env.reset(seed=seed)
    nav = float(info["nav"])
    state, start = None, np.ones((1,), dtype=bool)
    rets = []
    done = False
    while not done:
        action, state = policy.predict(obs, state=state, episode_start=start, deterministic=True)
        start = np.zeros((1,), dtype=bool)
        obs, _reward, terminated, truncated, info = env.step(action)
        new_nav = float(info["nav"])
        rets.append(new_nav / nav - 1.0 if nav > 0 else 0.0)
        nav = new_nav
        done = terminated or truncated
    unwrapped = env.unwrapped
    remaining = unwrapped._end - unwrapped._t if terminated else 0
    return np.concatenate([np.asarray(rets, dtype=np.float64), np.zeros(max(remaining, 0))])


register_domain("trendgym/Portfolio-v0", PortfolioDomain)
