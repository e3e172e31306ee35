"""The numba limit order book, its background order flow, and market data tapes (LOBSTER,
Databento MBO) rebuilt into it (no gym, torch or SB3 here)."""

from trendgym.envs.lob.book import OrderBook, as_messages, empty_messages
from trendgym.envs.lob.calibrate import (
    Calibration,
    calibrate_flow,
    load_calibration,
    save_calibration,
)
from trendgym.envs.lob.dbn import read_dbn, write_dbn
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
from trendgym.envs.lob.lobster import read_lobster, write_lobster
from trendgym.envs.lob.record import record_flow, tape_from_orders
from trendgym.envs.lob.tape import EVENT, TAPE_DTYPE, MessageTape

__all__ = [
    "BUY",
    "Calibration",
    "calibrate_flow",
    "load_calibration",
    "save_calibration",
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
    "EVENT",
    "TAPE_DTYPE",
    "MessageTape",
    "read_dbn",
    "read_lobster",
    "record_flow",
    "tape_from_orders",
    "write_dbn",
    "write_lobster",
]
