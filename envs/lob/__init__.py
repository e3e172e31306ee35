"""The numba limit order book and its background order flow (no gym, torch or SB3 here)."""

from trendgym.envs.lob.book import OrderBook, as_messages, empty_messages
from trendgym.envs.lob.kernels import (
    BUY,
    CANCEL,
    LIMIT,
    MARKET,
    MAX_OWNERS,
    MESSAGE_DTYPE,
    MODIFY,
    SELL,
    TRADE_DTYPE,
)

__all__ = [
    "BUY",
    "CANCEL",
    "LIMIT",
    "MARKET",
    "MAX_OWNERS",
    "MESSAGE_DTYPE",
    "MODIFY",
    "SELL",
    "TRADE_DTYPE",
    "OrderBook",
    "as_messages",
    "empty_messages",
]
