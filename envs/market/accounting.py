"""The names the Portfolio-v0 compliance guard imports from here, until it imports them from
their home: the step arithmetic is in ``trendgym.envs.portfolio.kernels``, the codes and rows
in ``trendgym.envs.portfolio.layout``."""

from __future__ import annotations

from trendgym.envs.portfolio.kernels import (
    check_action_nb,
    portfolio_vol_nb,
    rebalance_nb,
    step_into_nb,
)
from trendgym.envs.portfolio.layout import ActionCode, MarketRow

ACTION_OK = ActionCode.ok
ACTION_UNREPORTED = ActionCode.unreported
ROW_TRADABLE = MarketRow.tradable

__all__ = [
    "ACTION_OK",
    "ACTION_UNREPORTED",
    "ROW_TRADABLE",
    "check_action_nb",
    "portfolio_vol_nb",
    "rebalance_nb",
    "step_into_nb",
]
