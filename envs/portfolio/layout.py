"""Named layouts of Portfolio-v0's arrays, defined once and usable inside ``@njit`` kernels.

Each layout is a ``NamedTuple`` instance whose fields are the column (or row) numbers of one
array: numba reads a module-level tuple as a constant, so ``fstate[e, FState.nav]`` compiles
to a constant index. ``len(FState)`` is the number of columns.

The kernels take their arrays grouped in the ``NamedTuple`` bundles below (``PortfolioData``,
``PortfolioState``, ``Settings``, ``StepBuffers``): one argument per group keeps each kernel's
argument list short, and numba passes a tuple of arrays with no extra cost.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class _ActionCode(NamedTuple):
    ok: int = 0
    nan: int = 1
    out_of_range: int = 2
    unreported: int = 3  # an installed pre-trade guard refused: its interventions await reporting


ActionCode = _ActionCode()
"""Why an action is refused (``ok``: it is not)."""


class _MarketRow(NamedTuple):
    tradable: int = 0  # 1.0 where the asset trades at t, else 0.0
    ret_next: int = 1  # the t -> t+1 return (with any delisting return)
    impact: int = 2  # square-root impact scale: Y x daily vol x sqrt(participation)
    vol: int = 3  # ex-ante annualised vol


MarketRow = _MarketRow()
"""Rows of the per-day market array ``[T, len(MarketRow), n_assets]`` a step reads."""


class _FState(NamedTuple):
    nav: int = 0
    turnover_sum: int = 1
    cost_sum: int = 2
    dsr_a: int = 3  # the differential Sharpe's moving first moment
    dsr_b: int = 4  # ... and second moment


FState = _FState()
"""Columns of the float state ``[N, len(FState)]``: one row per portfolio."""


class _IState(NamedTuple):
    t: int = 0  # row of the prices the current observation used
    end: int = 1  # row at which the episode truncates
    k: int = 2  # steps taken this episode


IState = _IState()
"""Columns of the int state ``[N, len(IState)]``."""


class _Out(NamedTuple):
    nav: int = 0
    turnover: int = 1
    cost: int = 2
    t: int = 3
    k: int = 4
    turnover_sum: int = 5  # before any same-step reset
    cost_sum: int = 6
    reward: int = 7


Out = _Out()
"""Rows of the per-step outcome array ``[len(Out), N]``: what Python reads after a step (one
contiguous row per quantity, so reading it for every env is a plain copy)."""


class _Ends(NamedTuple):
    terminated: int = 0
    truncated: int = 1


Ends = _Ends()
"""Rows of the bool episode-end array ``[len(Ends), N]``."""


class PortfolioData(NamedTuple):
    """The dataset every portfolio reads (shared, never written by a step)."""

    market: np.ndarray  # [T, len(MarketRow), n_assets] float64
    avg_corr: np.ndarray  # [T] average pairwise correlation
    prop_cost: np.ndarray  # [n_assets] proportional cost, a fraction of the traded weight
    static_obs: np.ndarray  # [T, obs_dim] float32: the observation without the weights


class PortfolioState(NamedTuple):
    """Each portfolio's state, one row per env."""

    fstate: np.ndarray  # [N, len(FState)] float64
    istate: np.ndarray  # [N, len(IState)] int64
    weights: np.ndarray  # [N, n_assets] drifted weights
    rets: np.ndarray  # [N, longest episode] net returns of the episode so far


class Settings(NamedTuple):
    """Scalars shared by every portfolio (rebuilt when a setting changes)."""

    max_leverage: float
    target_vol: float  # 0.0: no vol targeting
    dsr_eta: float
    log_reward: bool  # False: differential Sharpe
    window: int  # 0: an episode walks to `last`
    last: int  # last row of the span
    n_features: int  # observation columns per asset
    weight_col: int  # the weight's column among them
    weight_clip: float  # bound of the observed weight


class StepBuffers(NamedTuple):
    """Where a batched step writes what Python reads back."""

    final_obs: np.ndarray  # [N, obs_dim] last observations of envs reset in the same step
    out: np.ndarray  # [len(Out), N] float64
    ends: np.ndarray  # [len(Ends), N] bool
    codes: np.ndarray  # [N] int64 ActionCode per env


class Resets(NamedTuple):
    """The resets a batched step does besides stepping."""

    first: np.ndarray  # [N] bool: reset these envs (next-step autoreset) instead of stepping
    next_start: np.ndarray  # [N] int64: each env's next episode's first row, pre-drawn
    same_step: bool  # reset an env as soon as its episode ends (same-step autoreset)
