"""``trendgym/Portfolio-v0``: daily trend-following allocation with costs and a point-in-time universe."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium import spaces

from trendgym.envs import rendering
from trendgym.envs.checks import check_number
from trendgym.envs.fastcall import compiled_entry
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
from trendgym.envs.portfolio.kernels import env_step_nb, vector_reset_nb
from trendgym.envs.portfolio.layout import (
    ActionCode,
    Ends,
    FState,
    IState,
    MarketRow,
    Out,
    PortfolioData,
    PortfolioState,
    Settings,
    StepBuffers,
)

REWARDS = ("log_return", "differential_sharpe")
# episode length on the synthetic market when `window=` is not given: a year of trading days,
# short enough for evaluation callbacks (the whole synthetic history is ~5,000 steps)
TRAINING_WINDOW = TRADING_DAYS_PER_YEAR


class _NotGiven:
    """The default of `window`: tells "not given" from an explicit None (the whole span)."""

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Any = _NotGiven()
_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))  # action dtypes the kernel takes
# `step` unpacks a step's outcome rows in this order
if Out._fields != ("nav", "turnover", "cost", "t", "k", "turnover_sum", "cost_sum", "reward"):
    raise ImportError(f"PortfolioEnv.step reads Out in another order than {Out._fields}")
WEIGHT_CLIP = 10.0  # bound of the observed (drifted) weight; the book itself is never clipped
DEFAULT_COSTS_BPS = 2.0


def checked_action(action: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    """`action` as an array of `shape` that the step kernels take (float32 and float64 as
    they are, other numbers as float64); ValueError naming `name` otherwise."""
    a = action if type(action) is np.ndarray else np.asarray(action)
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    if a.dtype != np.float32 and a.dtype != np.float64:
        if a.dtype.kind not in "fiu":
            raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
        a = a.astype(np.float64)
    return a


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

    NAV 1, all cash. With `window`, the first day is drawn uniformly from `reset(seed=...)`'s
    generator so that `window` steps fit in the span; with `window=None`, the episode walks the
    whole span from `start` (or the end of the `warmup`) to `end`. Not given, `window` is
    `TRAINING_WINDOW` (252) on the synthetic market (the whole span when that is shorter) and
    None with `prices=` (your data is walked whole).

    ## Episode End

    Truncated when the window (or the span) ends; terminated if NAV is wiped out. Every `info`,
    from `reset` on, has the same keys (`INFO_KEYS`), numbers except `date`, so batching
    clients (Tianshou, TorchRL) can store them: `nav`; `date` (a ``pd.Timestamp``, the close the
    observation used); `turnover` and `costs` (this step's; 0 at reset) and the same under
    `step_turnover` and `step_costs`; `n_steps` (steps so far); `compliance_violations` (0;
    the compliance wrapper's count); and the episode summary, 0 until the last step:
    `total_return`, `cagr`, `sharpe` (annualised), `max_drawdown` (a positive fraction). On the
    last step `turnover` becomes the episode's annualised sum |dw| and `costs` its summed
    costs (fraction of NAV); `step_turnover` and `step_costs` keep that step's own.

    ## Arguments

    - `prices=None`: wide DataFrame or CSV/parquet path (DatetimeIndex, one column per asset,
      NaN where not listed); None draws the synthetic `preset` market (`data_seed`, `n_years`,
      `n_assets`), whose costs and delisting returns are used unless overridden.
    - `long=False`: True reads `prices` as long format (one row per date and asset: date,
      asset, price columns) and pivots it; long data without it is refused with the pivot.
    - `costs_bps=None`: proportional cost (half spread + fee) in bp, a number or per-asset mapping
      (default 2 bp for user data).
    - `max_leverage=1.0`, `target_vol=None`, `window` (see Starting State), `start=None`,
      `end=None`.
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
        window: int | None = NOT_GIVEN,
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
        long: bool = False,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        check_number("max_leverage", max_leverage, lo=0.0, open_lo=True)
        check_number("impact_coef", impact_coef, lo=0.0)
        check_number("participation", participation, lo=0.0)
        check_number("dsr_eta", dsr_eta, lo=0.0, hi=1.0, open_lo=True)
        if target_vol is not None:
            check_number("target_vol", target_vol, lo=0.0, open_lo=True)
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {reward!r}")
        check_number("data_seed", data_seed, lo=0, integer=True)
        check_number("n_years", n_years, lo=0.0, open_lo=True)
        if n_assets is not None:
            check_number("n_assets", n_assets, lo=1, integer=True)
        if warmup is not None:
            check_number("warmup", warmup, lo=0, integer=True)
        check_number("min_history", min_history, lo=0, integer=True)
        self._settings_ready = False  # from True on, setting a kernel setting rebuilds `_settings`
        self.max_leverage = float(max_leverage)
        self.target_vol = None if target_vol is None else float(target_vol)
        self.reward_kind = reward
        self.dsr_eta = float(dsr_eta)
        if not isinstance(long, bool):
            raise TypeError(f"long must be a bool, got {long!r}")
        if long and prices is None:
            raise ValueError("long=True needs prices= (long-format data: date, asset, price)")
        self._load_data(prices, preset, n_years, n_assets, data_seed, long)
        self._set_costs(costs_bps, delisting_returns)
        self._build_market(signals, int(min_history), impact_coef, participation)
        self._build_observation()
        self._set_span(window, start, end, warmup)
        self._allocate()
        self._settings_ready = True
        self._rebuild_settings()
        self._done = True
        # pre-trade checks installed by ComplianceWrapper (see `install_guard`); `guard_events`
        # is how many interventions the last step's kernel wrote
        self._guard: tuple | None = None
        self.guard_events = 0
        # the step kernel's compiled entry per action type (see ``fastcall``): the other
        # arguments' types never change
        self._kernels: dict[tuple, Any] = {}

    def _allocate(self) -> None:
        """The kernels' state and step buffers: one row (a batch of one env)."""
        n, first, last = len(self.assets), *self._span
        self._state = PortfolioState(
            fstate=np.zeros((1, len(FState))),
            istate=np.zeros((1, len(IState)), dtype=np.int64),
            weights=np.zeros((1, n)),
            rets=np.zeros((1, last - first + 1)),
        )
        self._state.istate[0, IState.t] = self._state.istate[0, IState.end] = first
        self._buffers = StepBuffers(
            final_obs=np.zeros((1, self._static_obs.shape[1]), dtype=np.float32),
            out=np.zeros((len(Out), 1)),
            ends=np.zeros((len(Ends), 1), dtype=bool),
            codes=np.zeros(1, dtype=np.int64),
        )
        self._obs_dim = self._static_obs.shape[1]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_kernels"] = {}  # compiled entries do not pickle; found again on first step
        return state

    # ---------------------------------------------------------------- construction
    def _load_data(
        self,
        prices: Any,
        preset: str,
        n_years: float,
        n_assets: int | None,
        data_seed: int,
        long: bool = False,
    ) -> None:
        """The prices (the user's, or the synthetic `preset` market) and their default costs
        and delisting returns."""
        if prices is None:
            data = generate_market(preset, n_years=n_years, n_assets=n_assets, seed=data_seed)
            frame = validate_prices(data.prices)
            self._base_costs = data.costs_bps.to_numpy(dtype=np.float64)
            self._base_dlret = data.delisting_returns
        else:
            frame = validate_prices(load_frame(prices, "prices", long=long))
            self._base_costs = np.full(frame.shape[1], DEFAULT_COSTS_BPS)
            self._base_dlret = None
        self._synthetic = prices is None
        self.prices = frame
        self.assets = frame.columns
        self.dates = list(frame.index)

    def _set_costs(self, costs_bps: Any, delisting_returns: Any) -> None:
        columns = self.assets
        cost_override = per_asset(costs_bps, columns, "costs_bps", np.nan, 0.0, 1e4)
        self.costs_bps = np.where(np.isnan(cost_override), self._base_costs, cost_override)
        dlret = per_asset(self._base_dlret, columns, "delisting_returns", 0.0, -1.0, 10.0)
        if delisting_returns is not None:
            override = per_asset(
                delisting_returns, columns, "delisting_returns", np.nan, -1.0, 10.0
            )
            dlret = np.where(np.isnan(override), dlret, override)
        self.delisting_returns = dlret

    def _build_market(
        self, signals: Any, min_history: int, impact_coef: float, participation: float
    ) -> None:
        """Everything a step reads, computed once: features and the packed market rows."""
        frame = self.prices
        signal_arrays = {}
        for key, value in (signals or {}).items():
            if not isinstance(key, str) or key in ASSET_BOUNDS or key in ("weight", "mask"):
                raise ValueError(f"signal name {key!r} must be a new feature name (str)")
            signal_arrays[key] = validate_signal(value, frame, key)
        values = frame.to_numpy()
        n_days, n = values.shape
        self.tradable = tradable_mask(values, min_history)
        self.features = compute_features(values, self.tradable, signal_arrays)
        vol_daily = self.features.vol / math.sqrt(BUSINESS_DAYS_PER_YEAR)
        market = np.zeros((n_days, len(MarketRow), n))
        market[:, MarketRow.tradable] = self.tradable
        market[:, MarketRow.ret_next] = next_returns(values, self.tradable, self.delisting_returns)
        market[:, MarketRow.impact] = impact_coef * vol_daily * math.sqrt(participation)
        market[:, MarketRow.vol] = self.features.vol
        self._market = market
        self._avg_corr = self.features.avg_corr
        self._prop_cost = self.costs_bps * 1e-4

    def _build_observation(self) -> None:
        """The static part of every observation, the layout and the spaces."""
        n_days, n = self.tradable.shape
        asset_names = [*self.features.asset_names, "weight", "mask"]
        self._n_features = len(asset_names)
        self._weight_col = asset_names.index("weight")
        per_asset_obs = np.zeros((n_days, n, self._n_features), dtype=np.float32)
        per_asset_obs[:, :, : len(self.features.asset_names)] = self.features.asset
        per_asset_obs[:, :, -1] = self.tradable
        self._static_obs = np.ascontiguousarray(
            np.concatenate([per_asset_obs.reshape(n_days, -1), self.features.glob], axis=1)
        )
        self._data = PortfolioData(self._market, self._avg_corr, self._prop_cost, self._static_obs)
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
        self._shape = self.action_space.shape

    def _set_span(self, window: Any, start: Any, end: Any, warmup: int | None) -> None:
        """The rows an episode may use (`_span`) and the episode length (`window`)."""
        n_days = len(self.dates)
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
        if window is NOT_GIVEN:  # training windows on synthetic data, the whole span on yours
            fits = self._synthetic and TRAINING_WINDOW <= last - first
            window = TRAINING_WINDOW if fits else None
        if window is not None:
            if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
                raise ValueError(f"window must be a positive int, got {window!r}")
            if window > last - first:
                raise ValueError(
                    f"window={window} does not fit in the span of {last - first} steps"
                )
        self.window = None if window is None else int(window)
        self._span = (first, last)

    def _row(self, when: Any, name: str, side: str) -> int:
        try:
            stamp = pd.Timestamp(when)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name}={when!r} is not a date") from exc
        return int(self.prices.index.searchsorted(stamp, side=side))

    # ---------------------------------------------------------------- settings and state
    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name in _KERNEL_SETTINGS and self.__dict__.get("_settings_ready"):
            self._rebuild_settings()

    def _rebuild_settings(self) -> None:
        """The kernels' ``Settings``, from the current shared settings."""
        self._settings = Settings(
            max_leverage=float(self.max_leverage),
            target_vol=float(self.target_vol or 0.0),
            dsr_eta=float(self.dsr_eta),
            log_reward=self.reward_kind == "log_return",
            window=self.window or 0,
            last=self._span[1],
            n_features=self._n_features,
            weight_col=self._weight_col,
            weight_clip=WEIGHT_CLIP,
        )

    @property
    def t(self) -> int:
        """Row of the prices that the current observation used (its close)."""
        return int(self._state.istate[0, IState.t])

    @property
    def _t(self) -> int:  # the walk-forward runner reads `_t` and `_end` of an ended episode
        return self.t

    @property
    def _end(self) -> int:
        """Row at which the current episode truncates."""
        return int(self._state.istate[0, IState.end])

    @property
    def weights(self) -> np.ndarray:
        """Current (drifted) weights, a copy."""
        return self._state.weights[0].copy()

    @property
    def nav(self) -> float:
        return float(self._state.fstate[0, FState.nav])

    def install_guard(self, kernel: Any, guard: np.ndarray, events: np.ndarray) -> None:
        """Run `kernel` instead of the plain step kernel: ``env_step_nb``'s arguments plus
        `guard` (rule parameters and state) and `events` (where it writes interventions); it
        returns (code, number of events).
        ComplianceWrapper installs its checks this way, so they run inside the step's numba
        call, before the trade."""
        if self._guard is not None:
            raise ValueError("this Portfolio-v0 already has pre-trade checks (wrapped twice?)")
        self._guard = (kernel, guard, events)

    def attach_compliance(self, engine: Any) -> None:
        """Run `engine`'s checks inside the step kernel (ComplianceWrapper's adapter protocol)."""
        self.install_guard(engine.kernel, engine.guard, engine.events)

    # ---------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        first, last = self._span
        start = first
        if self.window is not None:
            start = int(self.np_random.integers(first, last - self.window + 1))
        obs = np.empty((1, self._static_obs.shape[1]), dtype=np.float32)
        starts = np.array([start], dtype=np.int64)
        vector_reset_nb(np.ones(1, dtype=bool), starts, self._state, self._static_obs,
                        self._settings, obs)  # fmt: skip
        self._done = False
        return obs[0], self._info(1.0, start, 0.0, 0.0, 0)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._done:
            raise RuntimeError("episode is over: call reset() before step()")
        a = action
        # the common case (a float array of the right shape) skips the checks' call
        if type(a) is not np.ndarray or a.dtype not in _KERNEL_DTYPES or a.shape != self._shape:
            a = checked_action(action, self.action_space.shape, "action")
        obs = np.empty(self._obs_dim, dtype=np.float32)
        if self._guard is None:
            code = self._call_kernel(a, obs)
        else:
            code = self._guarded_step(a, obs)
        if code:  # ActionCode.ok is 0
            self._refuse(code, a)
        nav, turnover, cost, t, k, _, _, reward = self._buffers.out[:, 0].tolist()
        terminated, truncated = self._buffers.ends[:, 0].tolist()
        info = self._info(nav, int(t), turnover, cost, int(k))
        if terminated or truncated:
            self._done = True
            info.update(self.episode_summary())  # turnover and costs become the episode's
        return obs, reward, terminated, truncated, info

    @staticmethod
    def _refuse(code: int, a: np.ndarray) -> None:
        """The error of a step kernel's action code (not ``ok``)."""
        if code == ActionCode.unreported:
            raise RuntimeError(
                "this env's pre-trade checks hold interventions nobody reported: "
                "step it through its ComplianceWrapper"
            )
        why = "NaN" if code == ActionCode.nan else "outside [-1, 1]"
        raise ValueError(f"action has weights {why}: {np.asarray(a).tolist()}")

    def _call_kernel(self, a: np.ndarray, obs: np.ndarray) -> int:
        """``env_step_nb`` through its compiled entry for this action type (see ``fastcall``:
        the other arguments' types never change); the action's code."""
        flags = a.flags
        if not flags.c_contiguous:
            a = np.ascontiguousarray(a)
            flags = a.flags
        key = (a.dtype, flags.writeable)
        entry = self._kernels.get(key)
        if entry is None:
            args = (a, self._state, self._data, self._settings, obs, self._buffers)
            entry = self._kernels[key] = compiled_entry(env_step_nb, args)
        return entry(a, self._state, self._data, self._settings, obs, self._buffers)

    def _guarded_step(self, a: np.ndarray, obs: np.ndarray) -> int:
        """Step through the installed pre-trade guard, which checks, trades and books the step."""
        kernel, guard, events = self._guard
        code, self.guard_events = kernel(
            a, self._state, self._data, self._settings, obs, self._buffers, guard, events
        )
        return code

    def _info(self, nav: float, t: int, turnover: float, cost: float, k: int) -> dict[str, Any]:
        """A step's info (see Episode End): the same keys from ``reset`` on, the summary's
        0 until the episode ends."""
        return {
            **OPEN_EPISODE_INFO,
            "nav": nav,
            "date": self.dates[t],
            "turnover": turnover,
            "costs": cost,
            "step_turnover": turnover,
            "step_costs": cost,
            "n_steps": k,
        }

    def episode_summary(self) -> dict[str, Any]:
        """Performance of the episode so far (the terminal info's summary keys)."""
        k = int(self._state.istate[0, IState.k])
        f = self._state.fstate[0]
        return summarize_episode(
            self._state.rets[0, :k], f[FState.turnover_sum], f[FState.cost_sum]
        )

    def render(self) -> np.ndarray | None:
        """``"rgb_array"``: a (200, 320, 3) frame: the episode's NAV path so far (top) over the
        current weights, one bar per asset, long up in green and short down in red (the largest
        weight, or an equal share of ``max_leverage`` if that is larger, reaches full height).
        None without a render mode or before the first reset."""
        k = int(self._state.istate[0, IState.k])
        if self.render_mode is None or (self._done and k == 0):
            return None
        img = rendering.canvas()
        nav = np.concatenate(([1.0], np.cumprod(1.0 + self._state.rets[0, :k])))
        rendering.line(img, 4, 100, nav, rendering.DARK)
        w = self._state.weights[0]
        scale = max(float(np.abs(w).max()), self.max_leverage / w.size)
        rendering.signed_columns(img, 110, rendering.HEIGHT, w, scale)
        return img


# every info's keys, in order, with the values of an episode that has not ended: the summary
# keys are 0 until the last step, where ``summarize_episode`` fills them (0, not NaN: equal
# infos must compare equal, as Gymnasium's determinism check compares them)
OPEN_EPISODE_INFO: dict[str, Any] = {
    "nav": 1.0,
    "date": None,
    "turnover": 0.0,
    "costs": 0.0,
    "step_turnover": 0.0,
    "step_costs": 0.0,
    "total_return": 0.0,
    "cagr": 0.0,
    "sharpe": 0.0,
    "max_drawdown": 0.0,
    "n_steps": 0,
    "compliance_violations": 0,
}
INFO_KEYS = tuple(OPEN_EPISODE_INFO)

# settings a step reads through ``Settings``: setting one rebuilds them
_KERNEL_SETTINGS = frozenset(("max_leverage", "target_vol", "dsr_eta", "reward_kind", "window"))


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
