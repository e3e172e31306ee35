"""``trendgym/Portfolio-v0``: daily trend-following allocation with costs and a point-in-time universe."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium import spaces

from trendgym.envs import rendering
from trendgym.envs.market.accounting import (
    ACTION_NAN,
    ACTION_OK,
    ACTION_UNREPORTED,
    ROW_IMPACT,
    ROW_RET_NEXT,
    ROW_TRADABLE,
    ROW_VOL,
    env_step_nb,
)
from trendgym.envs.market.calendar import BUSINESS_DAYS_PER_YEAR, TRADING_DAYS_PER_YEAR
from trendgym.envs.market.features import (
    ASSET_BOUNDS,
    GLOBAL_BOUNDS,
    SIGNAL_BOUNDS,
    compute_features,
)
from trendgym.envs.market.generator import generate_market
from trendgym.envs.market.loaders import load_frame, per_asset, validate_prices, validate_signal
from trendgym.envs.market.universe import next_returns, tradable_mask

REWARDS = ("log_return", "differential_sharpe")
WEIGHT_CLIP = 10.0  # bound of the observed (drifted) weight; the book itself is never clipped
DEFAULT_COSTS_BPS = 2.0
_LOG_FLOOR = 1e-12


class PortfolioEnv(gym.Env[np.ndarray, np.ndarray]):
    """Allocate a portfolio across a universe, daily, with costs and a point-in-time universe.

    ## Description

    Each day, after the close, the agent sets target weights (fractions of NAV) for every asset;
    the weights earn the next day's returns, net of spread, fees and square-root impact on the
    turnover. Assets list and delist: an asset is tradable only while it has a price (and
    `min_history` days of returns); a position in an asset that delists is closed at its last
    price x (1 + delisting return) and the loss reaches NAV. Trends come and go (chop, crises,
    momentum crashes), so a static rule does not fit every regime.

    **Timing:** the observation at step t uses data up to and including t's close; the weights
    chosen then earn t -> t+1 returns, with costs charged on the turnover at t.

    ## Action Space

    `Box(-1, 1, (n_assets,), float32)`: target weight per asset (in column order of the prices).
    Weights on untradable assets are ignored. With `target_vol`, the weights are scaled to that
    ex-ante vol (constant-correlation covariance: per-asset EWMA vol and `avg_corr`); then, if the
    gross exposure sum |w| exceeds `max_leverage`, all weights are scaled down to it. Actions with
    NaN or outside [-1, 1] raise `ValueError`.

    ## Observation Space

    `np.concatenate([per_asset.reshape(-1), global_features])`, float32, `per_asset` of shape
    (n_assets, n_asset_features) row-major; layout in `env.unwrapped.obs_layout`. Rows of
    untradable assets are all zero (their `mask` is 0).

    | feature | meaning | range |
    |---|---|---|
    | `ret_1m`, `ret_3m`, `ret_6m`, `ret_12m` | log return over 21/63/126/252 d / (daily vol x sqrt(h)) | [-10, 10] |
    | `macd_8_24`, `macd_16_48`, `macd_32_96` | EWMA(log p, fast) - EWMA(log p, slow), / (daily vol x sqrt(slow)) | [-10, 10] |
    | `vol` | ex-ante annualised vol, sqrt(261 EWMA(r^2, com 60)) | [0, 10] |
    | `csmom_rank` | cross-sectional rank of 12-1 momentum, scaled | [-1, 1] |
    | each `signals` key | the user's exogenous signal, known at t's close | [-10, 10] |
    | `weight` | current weight (after yesterday's trade drifted with today's returns) | [-10, 10] |
    | `mask` | 1 tradable, 0 masked | {0, 1} |
    | global `avg_corr` | EWMA average pairwise correlation | [-1, 1] |
    | global `market_drawdown` | drawdown of the equal-weight index of live assets | [-1, 0] |
    | global `regime_similarity` | exp(-distance) of today's vol/corr/trend state to past states | [0, 1] |

    ## Rewards

    `log_return` (default): log(1 + net return), net of costs; rewards sum to log(NAV_end / NAV_0).
    `differential_sharpe`: Moody & Saffell's differential Sharpe ratio of the net returns, with
    moving-average rate `dsr_eta`.

    ## Starting State

    NAV 1, all cash. Without `window`, the episode walks the whole span from `start` (or the end
    of the `warmup`) to `end`; with `window`, the first day is drawn uniformly from
    `reset(seed=...)`'s generator so that `window` steps fit in the span.

    ## Episode End

    Truncated when the window (or the span) ends; terminated if NAV is wiped out. Every `info`
    has `nav` and `date` (the close the observation used); `step` adds `turnover` and `costs`;
    the last adds `total_return`, `cagr`, `sharpe` (annualised), `max_drawdown` (a positive
    fraction), `turnover` (annualised sum |dw|), `costs` (summed, fraction of NAV),
    `n_steps`, `compliance_violations` (0), and keeps that step's own turnover and costs
    under `step_turnover` and `step_costs`.

    ## Arguments

    - `prices=None`: wide DataFrame or CSV/parquet path (DatetimeIndex, one column per asset,
      NaN where not listed); None draws the synthetic `preset` market (`data_seed`, `n_years`,
      `n_assets`), whose costs and delisting returns are used unless overridden.
    - `costs_bps=None`: proportional cost (half spread + fee) in bp, a number or per-asset mapping
      (default 2 bp for user data).
    - `max_leverage=1.0`, `target_vol=None`, `window=None`, `start=None`, `end=None`.
    - `delisting_returns=None`: number or per-asset mapping (default 0: closed at last price).
    - `signals=None`: mapping name -> wide DataFrame/path aligned to the prices.
    - `impact_coef=1.0`, `participation=0.01`: square-root impact Y and trade-to-volume ratio.
    - `reward="log_return"`, `dsr_eta=1/252`, `min_history=20`, `render_mode=None` (or `"rgb_array"`: a 200×320
      frame of the NAV path and the weights, see `render`).
    - `warmup=None`: rows of history before the first observation; None means a year (252),
      or half the data when that is shorter.

    ## Version History

    - v0: first release.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}
    compliance_kind = "portfolio"  # ComplianceWrapper's adapter protocol (`Compliant`)

    def __init__(
        self,
        prices: Any = None,
        costs_bps: Any = None,
        max_leverage: float = 1.0,
        window: int | None = None,
        start: Any = None,
        end: Any = None,
        *,
        preset: str = "futures",
        data_seed: int = 0,
        n_years: float = 20.0,
        n_assets: int | None = None,
        delisting_returns: Any = None,
        signals: dict[str, Any] | None = None,
        target_vol: float | None = None,
        impact_coef: float = 1.0,
        participation: float = 0.01,
        reward: str = "log_return",
        dsr_eta: float = 1.0 / TRADING_DAYS_PER_YEAR,
        warmup: int | None = None,
        min_history: int = 20,
        render_mode: str | None = None,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        _check_number("max_leverage", max_leverage, lo=0.0, open_lo=True)
        _check_number("impact_coef", impact_coef, lo=0.0)
        _check_number("participation", participation, lo=0.0)
        _check_number("dsr_eta", dsr_eta, lo=0.0, hi=1.0, open_lo=True)
        if target_vol is not None:
            _check_number("target_vol", target_vol, lo=0.0, open_lo=True)
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {reward!r}")
        for name, value in (
            ("warmup", 0 if warmup is None else warmup),
            ("min_history", min_history),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        self.max_leverage = float(max_leverage)
        self.target_vol = None if target_vol is None else float(target_vol)
        self.reward_kind = reward
        self.dsr_eta = float(dsr_eta)

        # data: the user's, or the synthetic preset market
        if prices is None:
            data = generate_market(preset, n_years=n_years, n_assets=n_assets, seed=data_seed)
            frame = validate_prices(data.prices)
            base_costs = data.costs_bps.to_numpy(dtype=np.float64)
            base_dlret = data.delisting_returns
        else:
            frame = validate_prices(load_frame(prices, "prices"))
            base_costs = np.full(frame.shape[1], DEFAULT_COSTS_BPS)
            base_dlret = None
        self.prices = frame
        self.assets = frame.columns
        self.dates = list(frame.index)
        cost_override = per_asset(costs_bps, frame.columns, "costs_bps", np.nan, 0.0, 1e4)
        self.costs_bps = np.where(np.isnan(cost_override), base_costs, cost_override)
        dlret = per_asset(base_dlret, frame.columns, "delisting_returns", 0.0, -1.0, 10.0)
        if delisting_returns is not None:
            override = per_asset(
                delisting_returns, frame.columns, "delisting_returns", np.nan, -1.0, 10.0
            )
            dlret = np.where(np.isnan(override), dlret, override)
        self.delisting_returns = dlret
        signal_arrays = {}
        for key, value in (signals or {}).items():
            if not isinstance(key, str) or key in ASSET_BOUNDS or key in ("weight", "mask"):
                raise ValueError(f"signal name {key!r} must be a new feature name (str)")
            signal_arrays[key] = validate_signal(value, frame, key)

        # everything a step needs, computed once
        values = frame.to_numpy()
        n_days, n = values.shape
        self.tradable = tradable_mask(values, int(min_history))
        self.features = compute_features(values, self.tradable, signal_arrays)
        vol_daily = self.features.vol / math.sqrt(BUSINESS_DAYS_PER_YEAR)
        market = np.zeros((n_days, 4, n))
        market[:, ROW_TRADABLE] = self.tradable
        market[:, ROW_RET_NEXT] = next_returns(values, self.tradable, dlret)
        market[:, ROW_IMPACT] = impact_coef * vol_daily * math.sqrt(participation)
        market[:, ROW_VOL] = self.features.vol
        self._market = market
        self._avg_corr = self.features.avg_corr
        self._prop_cost = self.costs_bps * 1e-4

        asset_names = [*self.features.asset_names, "weight", "mask"]
        self._n_features = len(asset_names)
        self._weight_col = asset_names.index("weight")
        per_asset_obs = np.zeros((n_days, n, self._n_features), dtype=np.float32)
        per_asset_obs[:, :, : len(self.features.asset_names)] = self.features.asset
        per_asset_obs[:, :, -1] = self.tradable
        self._static_obs = np.ascontiguousarray(
            np.concatenate([per_asset_obs.reshape(n_days, -1), self.features.glob], axis=1)
        )
        self.obs_layout = {
            "n_assets": n,
            "asset_features": asset_names,
            "global_features": list(self.features.global_names),
        }
        bounds = [ASSET_BOUNDS.get(k, SIGNAL_BOUNDS) for k in self.features.asset_names]
        bounds += [(-WEIGHT_CLIP, WEIGHT_CLIP), (0.0, 1.0)]
        lo = np.concatenate(
            [np.tile([b[0] for b in bounds], n), [b[0] for b in GLOBAL_BOUNDS.values()]]
        )
        hi = np.concatenate(
            [np.tile([b[1] for b in bounds], n), [b[1] for b in GLOBAL_BOUNDS.values()]]
        )
        self.observation_space = spaces.Box(
            lo.astype(np.float32), hi.astype(np.float32), dtype=np.float32
        )
        self.action_space = spaces.Box(-1.0, 1.0, shape=(n,), dtype=np.float32)

        # episode span
        if warmup is None:
            warmup = min(TRADING_DAYS_PER_YEAR, (n_days - 1) // 2)
        first = (
            max(int(warmup), self._row(start, "start", side="left"))
            if start is not None
            else int(warmup)
        )
        last = self._row(end, "end", side="right") - 1 if end is not None else n_days - 1
        if last - first < 1:
            raise ValueError(
                f"no room for an episode: span rows {first}..{last} of {n_days} "
                f"(warmup={warmup}, start={start!r}, end={end!r})"
            )
        if window is not None:
            if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
                raise ValueError(f"window must be a positive int, got {window!r}")
            if window > last - first:
                raise ValueError(
                    f"window={window} does not fit in the span of {last - first} steps"
                )
        self.window = None if window is None else int(window)
        self._span = (first, last)

        self._weights = np.zeros(n)
        self._t = first
        self._end = last
        self._t0 = first
        self._nav = 1.0
        self._k = 0
        self._rets = np.zeros(last - first + 1)
        self._turnover_sum = 0.0
        self._cost_sum = 0.0
        self._dsr_a = 0.0
        self._dsr_b = 0.0
        self._done = True
        # pre-trade checks installed by ComplianceWrapper (see `install_guard`); `guard_events`
        # is how many interventions the last step's kernel wrote
        self._guard: tuple | None = None
        self.guard_events = 0

    # ---------------------------------------------------------------- helpers
    def _row(self, when: Any, name: str, side: str) -> int:
        try:
            stamp = pd.Timestamp(when)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name}={when!r} is not a date") from exc
        return int(self.prices.index.searchsorted(stamp, side=side))

    @property
    def t(self) -> int:
        """Row of the prices that the current observation used (its close)."""
        return self._t

    @property
    def weights(self) -> np.ndarray:
        """Current (drifted) weights, a copy."""
        return self._weights.copy()

    @property
    def nav(self) -> float:
        return self._nav

    def install_guard(self, kernel: Any, guard: np.ndarray, events: np.ndarray) -> None:
        """Run `kernel` instead of the plain step kernel: the same arguments plus NAV, `guard`
        (rule parameters and state), `events` (where it writes interventions) and the
        observation to fill; it returns the plain kernel's scalars plus the number of events.
        ComplianceWrapper installs its checks this way, so they run inside the step's one
        numba call."""
        if self._guard is not None:
            raise ValueError("this Portfolio-v0 already has pre-trade checks (wrapped twice?)")
        self._guard = (kernel, guard, events, self._static_obs.shape[1], self._static_obs.dtype)

    def attach_compliance(self, engine: Any) -> None:
        """Run `engine`'s checks inside the step kernel (ComplianceWrapper's adapter protocol)."""
        self.install_guard(engine.kernel, engine.guard, engine.events)

    # ---------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        first, last = self._span
        if self.window is None:
            self._t0, self._end = first, last
        else:
            self._t0 = int(self.np_random.integers(first, last - self.window + 1))
            self._end = self._t0 + self.window
        self._t = self._t0
        self._weights[:] = 0.0
        self._nav = 1.0
        self._k = 0
        self._turnover_sum = 0.0
        self._cost_sum = 0.0
        self._dsr_a = 0.0
        self._dsr_b = 0.0
        self._done = False
        return self._static_obs[self._t].copy(), {"nav": 1.0, "date": self.dates[self._t]}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._done:
            raise RuntimeError("episode is over: call reset() before step()")
        a = action if type(action) is np.ndarray else np.asarray(action)
        if a.shape != self.action_space.shape:
            raise ValueError(f"action must have shape {self.action_space.shape}, got {a.shape}")
        if a.dtype != np.float32 and a.dtype != np.float64:
            if a.dtype.kind not in "fiu":
                raise ValueError(f"action must be numeric, got dtype {a.dtype}")
            a = a.astype(np.float64)
        t = self._t
        if self._guard is None:
            code, net, _gross, cost, turnover, obs = env_step_nb(
                a,
                self._weights,
                t,
                self._market,
                self._avg_corr,
                self._prop_cost,
                self.max_leverage,
                self.target_vol or 0.0,
                self._static_obs,
                self._n_features,
                self._weight_col,
                WEIGHT_CLIP,
            )
        else:
            kernel, guard, events, n_obs, obs_dtype = self._guard
            obs = np.empty(n_obs, dtype=obs_dtype)  # the kernel writes into it, allocating nothing
            code, net, _gross, cost, turnover, self.guard_events = kernel(
                a,
                self._weights,
                t,
                self._market,
                self._avg_corr,
                self._prop_cost,
                self.max_leverage,
                self.target_vol or 0.0,
                self._static_obs,
                self._n_features,
                self._weight_col,
                WEIGHT_CLIP,
                self._nav,
                guard,
                events,
                obs,
            )
        if code != ACTION_OK:
            if code == ACTION_UNREPORTED:
                raise RuntimeError(
                    "this env's pre-trade checks hold interventions nobody reported: "
                    "step it through its ComplianceWrapper"
                )
            why = "NaN" if code == ACTION_NAN else "outside [-1, 1]"
            raise ValueError(f"action has weights {why}: {np.asarray(a).tolist()}")
        growth = 1.0 + net
        terminated = growth <= _LOG_FLOOR
        self._nav = self._nav * growth if not terminated else 0.0
        self._rets[self._k] = net
        self._k += 1
        self._turnover_sum += turnover
        self._cost_sum += cost
        self._t = t + 1
        if self.reward_kind == "log_return":
            reward = math.log(max(growth, _LOG_FLOOR))
        else:
            reward = self._differential_sharpe(net)
        truncated = self._t >= self._end and not terminated
        info = {"nav": self._nav, "date": self.dates[self._t], "turnover": turnover, "costs": cost}
        if terminated or truncated:
            self._done = True
            # the summary's `turnover`/`costs` are the episode's; keep this step's under step_*
            info.update(step_turnover=turnover, step_costs=cost, **self.episode_summary())
        return obs, reward, terminated, truncated, info

    def _differential_sharpe(self, r: float) -> float:
        """Moody & Saffell (1998): dS/d(eta) of the EWMA Sharpe, from the moments before this step."""
        a, b, eta = self._dsr_a, self._dsr_b, self.dsr_eta
        da, db = r - a, r * r - b
        self._dsr_a, self._dsr_b = a + eta * da, b + eta * db
        var = b - a * a
        if self._k <= 1 or var <= 1e-12:
            return 0.0
        d = (b * da - 0.5 * a * db) / var**1.5
        return float(d) if math.isfinite(d) else 0.0

    def episode_summary(self) -> dict[str, Any]:
        """Performance of the episode so far (the terminal info's summary keys)."""
        return summarize_episode(self._rets[: self._k], self._turnover_sum, self._cost_sum)

    def render(self) -> np.ndarray | None:
        """``"rgb_array"``: a (200, 320, 3) frame: the episode's NAV path so far (top) over the
        current weights, one bar per asset, long up in green and short down in red (the largest
        weight, or an equal share of ``max_leverage`` if that is larger, reaches full height).
        None without a render mode or before the first reset."""
        if self.render_mode is None or (self._done and self._k == 0):
            return None
        img = rendering.canvas()
        nav = np.concatenate(([1.0], np.cumprod(1.0 + self._rets[: self._k])))
        rendering.line(img, 4, 100, nav, rendering.DARK)
        w = self._weights
        scale = max(float(np.abs(w).max()), self.max_leverage / w.size)
        rendering.signed_columns(img, 110, rendering.HEIGHT, w, scale)
        return img


def summarize_episode(rets: np.ndarray, turnover_sum: float, cost_sum: float) -> dict[str, Any]:
    """Terminal summary of an episode from its net returns and summed turnover and costs.

    Shared by `PortfolioEnv` and the vector env so both report the same numbers bit for bit.
    """
    n = rets.size
    nav_path = np.cumprod(np.concatenate([[1.0], np.maximum(1.0 + rets, 0.0)]))
    peak = np.maximum.accumulate(nav_path)
    std = float(rets.std(ddof=1)) if n > 1 else 0.0
    years = n / BUSINESS_DAYS_PER_YEAR
    total = float(nav_path[-1] - 1.0)
    return {
        "total_return": total,
        "cagr": float((1.0 + total) ** (1.0 / years) - 1.0) if years > 0 and total > -1.0 else -1.0,
        "sharpe": float(rets.mean() / std * math.sqrt(BUSINESS_DAYS_PER_YEAR)) if std > 0 else 0.0,
        "max_drawdown": float(np.max(1.0 - nav_path / peak)),
        "turnover": turnover_sum * BUSINESS_DAYS_PER_YEAR / max(n, 1),
        "costs": cost_sum,
        "n_steps": n,
        "compliance_violations": 0,
    }


def _check_number(
    name: str, value: Any, lo: float, hi: float = math.inf, open_lo: bool = False
) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or v < lo or (open_lo and v == lo) or v > hi:
        raise ValueError(f"{name}={value!r} is out of range")
