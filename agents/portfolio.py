"""Baseline allocation policies for ``trendgym/Portfolio-v0`` and their comparison table.

Each policy is built from the env it acts in (wrapped or not) and follows SB3's
``predict(obs, state=None, episode_start=None, deterministic=True) -> (action, state)``.
They read only what the agent could know at t's close: the observation (``EqualWeight``,
``RiskParity``, ``CSMOM``, ``RiskParityTrend``) or weights computed from prices up to each
date (``StaticTSMOM``, looked up at the env's current row). ``portfolio_vol=`` scales any of
them to an ex-ante annual vol (constant-correlation covariance from the observed vols and
``avg_corr``); the env then caps gross leverage at its ``max_leverage``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from trendgym.envs.market.calendar import BUSINESS_DAYS_PER_YEAR as PERIODS_PER_YEAR

BASELINES = ("StaticTSMOM", "CSMOM", "EqualWeight", "RiskParity", "RiskParityTrend")


def tsmom_weights(
    prices: pd.DataFrame,
    lookback: int = 252,
    vol_com: float = 60,
    target_vol: float = 0.40,
    periods: int = PERIODS_PER_YEAR,
) -> pd.DataFrame:
    """Time-series momentum weights of Moskowitz, Ooi & Pedersen (2012).

    weight = sign(lookback return) x target_vol / ex-ante vol / number of live assets, where the
    ex-ante vol is sqrt(periods x EWMA of squared daily returns, centre of mass `vol_com`) and
    an asset is live on a date when it has both a lookback return and a vol there. Row t uses
    prices up to and including t only; dates where an asset is not live get 0.
    """
    if not isinstance(prices, pd.DataFrame):
        raise TypeError(f"prices must be a DataFrame, got {type(prices).__name__}")
    if isinstance(lookback, bool) or not isinstance(lookback, (int, np.integer)) or lookback < 1:
        raise ValueError(f"lookback must be a positive int, got {lookback!r}")
    for name, value in (("vol_com", vol_com), ("target_vol", target_vol), ("periods", periods)):
        if not (
            isinstance(value, (int, float, np.integer, np.floating))
            and value > 0
            and math.isfinite(value)
        ):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    prices = prices.astype(np.float64)
    returns = prices.pct_change(fill_method=None)
    vol = np.sqrt((returns**2).ewm(com=vol_com).mean() * periods)
    signal = np.sign(prices / prices.shift(lookback) - 1.0)
    raw = signal * target_vol / vol.where(vol > 0)
    raw = raw.where(np.isfinite(raw))
    n_live = raw.notna().sum(axis=1)
    return raw.div(n_live.where(n_live > 0), axis=0).fillna(0.0)


def _scale_to_vol(
    weights: np.ndarray, vol: np.ndarray, avg_corr: float, target: float
) -> np.ndarray:
    """Scale weights to an ex-ante annual vol under a constant-correlation covariance."""
    x = weights * vol
    var = float((x**2).sum() + avg_corr * (x.sum() ** 2 - (x**2).sum()))
    return weights * (target / math.sqrt(var)) if var > 1e-18 else weights


class PortfolioPolicy:
    """Shared plumbing: the env's observation layout, batching, vol targeting, clipping."""

    batches: ClassVar[bool] = True  # False: the weights follow one env's clock, one obs a call

    def __init__(self, env: Any, portfolio_vol: float | None = None) -> None:
        self.env = env
        unwrapped = getattr(env, "unwrapped", env)
        layout = getattr(unwrapped, "obs_layout", None)
        if layout is None or "asset_features" not in layout:
            raise TypeError(
                f"{type(self).__name__} needs a Portfolio-v0 env, got {type(unwrapped).__name__}"
            )
        if portfolio_vol is not None and not (portfolio_vol > 0 and math.isfinite(portfolio_vol)):
            raise ValueError(f"portfolio_vol must be positive, got {portfolio_vol!r}")
        self._env = unwrapped
        self.portfolio_vol = portfolio_vol
        self.n_assets = int(layout["n_assets"])
        self._n_features = len(layout["asset_features"])
        self._col = {name: i for i, name in enumerate(layout["asset_features"])}
        self._glob = {name: i for i, name in enumerate(layout["global_features"])}

    def _weights(self, per_asset: np.ndarray, glob: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        obs = np.asarray(observation, dtype=np.float64)
        batched = obs.ndim == 2
        if batched and obs.shape[0] != 1 and not self.batches:
            raise ValueError(
                f"{type(self).__name__} follows one env's clock; got a batch of observations"
            )
        rows = obs if batched else obs[None, :]
        size = self.n_assets * self._n_features
        if rows.shape[1] != size + len(self._glob):
            raise ValueError(
                f"observation has {rows.shape[1]} values, expected {size + len(self._glob)}"
            )
        actions = np.empty((rows.shape[0], self.n_assets), dtype=np.float32)
        for k, row in enumerate(rows):
            per_asset = row[:size].reshape(self.n_assets, self._n_features)
            glob = row[size:]
            w = self._weights(per_asset, glob) * (per_asset[:, self._col["mask"]] > 0.5)
            if self.portfolio_vol is not None:
                w = _scale_to_vol(
                    w,
                    per_asset[:, self._col["vol"]],
                    glob[self._glob["avg_corr"]],
                    self.portfolio_vol,
                )
            actions[k] = np.clip(w, -1.0, 1.0)
        return (actions if batched else actions[0]), state


class EqualWeight(PortfolioPolicy):
    """1 / (number of tradable assets) in each tradable asset."""

    def _weights(self, per_asset: np.ndarray, glob: np.ndarray) -> np.ndarray:
        mask = per_asset[:, self._col["mask"]] > 0.5
        return mask / max(int(mask.sum()), 1)


class RiskParity(PortfolioPolicy):
    """Inverse-vol long weights summing to 1 (naive risk parity)."""

    def _weights(self, per_asset: np.ndarray, glob: np.ndarray) -> np.ndarray:
        return _inverse_vol(per_asset, self._col)


def _inverse_vol(per_asset: np.ndarray, col: dict[str, int]) -> np.ndarray:
    vol = per_asset[:, col["vol"]]
    ok = (per_asset[:, col["mask"]] > 0.5) & (vol > 0)
    inv = np.where(ok, 1.0 / np.where(ok, vol, 1.0), 0.0)
    total = inv.sum()
    return inv / total if total > 0 else inv


class RiskParityTrend(PortfolioPolicy):
    """Risk-parity core plus a long/short trend overlay (the report's section 6.2).

    weight = core x (1 + trend_weight x s) / (1 + trend_weight), core the inverse-vol weights
    and s in [-1, 1] the mean sign of the 3, 6 and 12-month returns; with the default
    trend_weight=2 an asset in a full downtrend is held short at a third of its core weight.
    """

    def __init__(
        self, env: Any, trend_weight: float = 2.0, portfolio_vol: float | None = None
    ) -> None:
        super().__init__(env, portfolio_vol)
        if not (trend_weight >= 0 and math.isfinite(trend_weight)):
            raise ValueError(f"trend_weight must be >= 0, got {trend_weight!r}")
        self.trend_weight = float(trend_weight)

    def _weights(self, per_asset: np.ndarray, glob: np.ndarray) -> np.ndarray:
        core = _inverse_vol(per_asset, self._col)
        s = np.mean(
            [np.sign(per_asset[:, self._col[k]]) for k in ("ret_3m", "ret_6m", "ret_12m")], axis=0
        )
        return core * (1.0 + self.trend_weight * s) / (1.0 + self.trend_weight)


class CSMOM(PortfolioPolicy):
    """Jegadeesh-Titman 12-1 cross-sectional momentum: long the top `fraction`, short the bottom.

    Ranks come from the observation's ``csmom_rank``; each leg has gross 0.5 (dollar neutral).
    """

    def __init__(self, env: Any, fraction: float = 0.2, portfolio_vol: float | None = None) -> None:
        super().__init__(env, portfolio_vol)
        if not 0 < fraction <= 0.5:
            raise ValueError(f"fraction must be in (0, 0.5], got {fraction!r}")
        self.fraction = float(fraction)

    def _weights(self, per_asset: np.ndarray, glob: np.ndarray) -> np.ndarray:
        rank = per_asset[:, self._col["csmom_rank"]]
        ranked = np.flatnonzero((per_asset[:, self._col["mask"]] > 0.5) & (rank != 0.0))
        w = np.zeros(self.n_assets)
        if ranked.size < 2:
            return w
        k = max(1, int(round(self.fraction * ranked.size)))
        order = ranked[np.argsort(rank[ranked], kind="stable")]
        w[order[-k:]] = 0.5 / k
        w[order[:k]] = -0.5 / k
        return w


class StaticTSMOM(PortfolioPolicy):
    """``tsmom_weights`` of the env's prices, looked up at the env's current row.

    The weights are computed once from the whole price frame; row t depends only on prices up
    to t (see ``tsmom_weights``), so the lookup respects the timing rule. Acts in one env at a
    time (the row is the env's); a batch of several observations is refused.
    """

    batches: ClassVar[bool] = False

    def __init__(
        self,
        env: Any,
        lookback: int = 252,
        vol_com: float = 60,
        target_vol: float = 0.40,
        periods: int = PERIODS_PER_YEAR,
        portfolio_vol: float | None = None,
    ) -> None:
        super().__init__(env, portfolio_vol)
        self.table = tsmom_weights(self._env.prices, lookback, vol_com, target_vol, periods)
        self._table = self.table.to_numpy()

    def _weights(self, per_asset: np.ndarray, glob: np.ndarray) -> np.ndarray:
        return self._table[self._env.t]


def run_episode(env: Any, policy: Any, seed: int | None = None) -> dict[str, Any]:
    """Run one episode of `policy` in `env` and return the terminal info."""
    obs, info = env.reset(seed=seed)
    done = False
    while not done:
        action, _ = policy.predict(obs, deterministic=True)
        obs, _reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    return info


def portfolio_baseline_table(
    preset: str = "futures",
    seed: int = 0,
    n_years: float = 20.0,
    n_assets: int | None = None,
    **env_kwargs: Any,
) -> pd.DataFrame:
    """Sharpe, CAGR, max drawdown, turnover and costs of every baseline over a preset's whole span.

    Extra keywords go to ``PortfolioEnv`` (e.g. ``max_leverage``, ``costs_bps``, ``target_vol``).
    """
    from trendgym.envs.portfolio import PortfolioEnv  # agents may import envs, never the reverse

    env = PortfolioEnv(
        preset=preset,
        data_seed=seed,
        n_years=n_years,
        n_assets=n_assets,
        **{"window": None, **env_kwargs},
    )
    policies = {
        "StaticTSMOM": StaticTSMOM(env),
        "CSMOM": CSMOM(env),
        "EqualWeight": EqualWeight(env),
        "RiskParity": RiskParity(env),
        "RiskParityTrend": RiskParityTrend(env),
    }
    rows = {}
    for name, policy in policies.items():
        info = run_episode(env, policy)
        rows[name] = {k: info[k] for k in ("sharpe", "cagr", "max_drawdown", "turnover", "costs")}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = f"{preset} (seed {seed}, {n_years:g}y)"
    return table


def main() -> None:
    """Print the baseline table of every preset (``python -m trendgym.agents.portfolio``)."""
    from trendgym.envs.market.generator import PRESETS

    for preset in PRESETS:
        print(portfolio_baseline_table(preset).round(3).to_string(), end="\n\n")


if __name__ == "__main__":
    main()
