"""Market data for the portfolio env: synthetic regimes, loaders, point-in-time universes, features.

No gymnasium, torch or SB3 here: these are plain numpy/pandas/numba building blocks.
"""

from trendgym.envs.market.features import (
    FeatureSet,
    compute_features,
    ewm_mean_nb,
    nearest_state_distance_nb,
)
from trendgym.envs.market.generator import PRESETS, REGIMES, MarketData, generate_market
from trendgym.envs.market.loaders import load_frame, per_asset, validate_prices, validate_signal
from trendgym.envs.market.universe import (
    history_length,
    listing_span,
    next_returns,
    survivors,
    tradable_mask,
)

__all__ = [
    "PRESETS",
    "REGIMES",
    "FeatureSet",
    "MarketData",
    "compute_features",
    "ewm_mean_nb",
    "generate_market",
    "history_length",
    "listing_span",
    "load_frame",
    "nearest_state_distance_nb",
    "next_returns",
    "per_asset",
    "survivors",
    "tradable_mask",
    "validate_prices",
    "validate_signal",
]
