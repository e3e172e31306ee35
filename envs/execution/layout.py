"""Execution-v0's state columns, phases, codes and observation table, each defined once.

Every env's episode lives in a row of an int table (``EI``) and a float table (``EF``); the
settings every env shares in ``CFG``. A step is a small state machine over ``PHASE``. The
observation's names, bounds and documentation come from one table, ``OBS_SPEC``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from trendgym.envs.lob.flow import PRESETS
from trendgym.envs.lob.kernels import MESSAGE_DTYPE
from trendgym.envs.lob.layout import layout

AGENT = 1  # owner tag of the agent's orders on the book
MSG_SLOTS = 2  # messages one decision sends at most (a cancel, then a new order or modify)
N_RAW = 8  # raw generator words an episode draw uses
MAX_COMPLETION_SECONDS = 3600  # forced completion gives up after this long on an empty book
TOB_LEVELS = 5  # levels the deep imbalance sums over

# the action's order types (index 0 of the action picks one of these bins)
ORDER = layout("OrderType", "wait behind_2 behind_1 touch inside market")
N_ORDER_TYPES = len(ORDER)
# ticks from the own touch a limit of each order type is placed at (wait/market: unused)
LIMIT_OFFSETS = np.array([0, -2, -1, 0, 1, 0], dtype=np.int64)

SIDE_NAMES = {1: "buy", -1: "sell"}  # the side code of infos and ``ExecutionEnv.side``
PRESET_NAMES = tuple(sorted(PRESETS))  # a preset code is an index into this

# int state per env
EI = layout(
    "EpisodeInt",
    "side qty remaining filled_end cash n_orders next_id own_id t market_qty seen_qty "
    "seen_value phase n_msgs msg_start n_trades iter warm_i order_type replace ref_touch "
    "need_lo need_hi terminated preset hooked act_only reset_done hook_first "
    "batch_trades cursor n_consumed consumed_msgs halt rejected",
)
# float state per env
EF = layout(
    "EpisodeFloat",
    "arrival vol_bps touch_depth urgency shortfall ewm_var prev_mid market_value last_ofi "
    "fees t_end fraction warm_depth reward step_volume start_time",
)
# settings shared by every env: the env's kwargs (None as -1 / 0: "draw it")
CFG = layout(
    "Config",
    "horizon step_seconds latency fee_bps risk_aversion n_warm start_price side quantity "
    "qty_lo qty_hi preset urgency max_drift",
)
# top of book as ``lob.kernels.top_of_book_nb`` fills it, and the agent's resting order
TOB = layout("TopOfBook", "bid ask bid_qty ask_qty bid_depth ask_depth")
OWN = layout("OwnOrder", "qty price ahead")

# an info's entries (``INFO_SPEC`` in env.py) as rows of two tables the info kernel fills:
# the int-valued keys and the float-valued ones
INFO_INT = layout(
    "InfoInt",
    "remaining n_orders compliance_violations unfilled_marked side quantity preset "
    "replay_consumed replay_halted replay_rejected",
)
INFO_FLOAT = layout(
    "InfoFloat",
    "running_shortfall_bps shortfall_bps fill_rate arrival_price avg_price market_vwap "
    "vwap_slippage_bps urgency replay_start_time",
)

# Where an env's step (or reset) stands. A kernel that needs room returns without moving on,
# so the env resumes in the same phase.
PHASE = layout(
    "Phase",
    "idle decide latency_flow act act_submit flow_start flow complete_cancel complete_market "
    "complete_submit complete_flow finish reset warm_flow",
)
FLOW_PHASES = (PHASE.latency_flow, PHASE.flow, PHASE.complete_flow, PHASE.warm_flow)


class ObsField(NamedTuple):
    name: str
    low: float
    high: float
    meaning: str


OBS_SPEC = (
    ObsField("time_left", 0, 1, "decisions left / horizon"),
    ObsField("inventory_left", 0, 1, "quantity left / parent quantity"),
    ObsField("spread", 0, 50, "best ask − best bid, ticks"),
    ObsField("imbalance_1", -1, 1, "side × (bid − ask)/(bid + ask) displayed qty at the touch"),
    ObsField("imbalance_5", -1, 1, "the same over the best 5 levels"),
    ObsField("ofi", -10, 10, "side × order-flow imbalance over the last step / mean touch depth"),
    ObsField(
        "mid_move",
        -10,
        10,
        "side × (mid − arrival) in per-step volatilities (positive = price ran away)",
    ),
    ObsField("volatility", 0, 100, "recent realised volatility, bps per step (EWMA)"),
    ObsField("own_size", 0, 1, "resting child quantity / parent quantity"),
    ObsField(
        "own_distance", -10, 10, "ticks from the child's price to the own touch (negative = behind)"
    ),
    ObsField(
        "own_queue_ahead", 0, 10, "displayed lots queued ahead of the child / mean touch depth"
    ),
    ObsField(
        "urgency",
        0,
        1,
        "strength of the adverse drift (the signal's strength, known to the trader)",
    ),
)
OBS = layout("Observation", " ".join(f.name for f in OBS_SPEC))
OBS_NAMES = OBS._fields
N_OBS = len(OBS)
# numba freezes these as constants where the kernel clips the observation
OBS_LOW = np.array([f.low for f in OBS_SPEC], dtype=np.float32)
OBS_HIGH = np.array([f.high for f in OBS_SPEC], dtype=np.float32)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def obs_table() -> str:
    """The observation table of ``ExecutionEnv``'s docstring (markdown), from ``OBS_SPEC``."""
    rows = ["| index | name | meaning | range |", "|---|---|---|---|"]
    rows += [
        f"| {i} | {f.name} | {f.meaning} | [{_fmt(f.low)}, {_fmt(f.high)}] |"
        for i, f in enumerate(OBS_SPEC)
    ]
    return "\n".join(rows)


class Episode(NamedTuple):
    """The per-env arrays of the step kernels besides the book and its flow (one row per env):
    the actions, the agent's message batch (then the copy a pre-trade hook is checked against),
    the int and float state, the last top of book and resting order, the warm-up's mids, the
    observation, the terminal rows a same-step reset leaves behind, and the raw generator words
    of the next episode."""

    actions: np.ndarray
    msgs: np.ndarray
    ei: np.ndarray
    ef: np.ndarray
    tob: np.ndarray
    own: np.ndarray
    mids: np.ndarray
    obs: np.ndarray
    final_obs: np.ndarray
    final_ei: np.ndarray
    final_ef: np.ndarray
    nx_raw: np.ndarray


class Replay(NamedTuple):
    """What a replay episode reads besides its book (``replay.py``): the tape and its book
    checkpoints, shared by every env, and per env (one row each) the ids of tape orders the
    agent took all of and the rebuild's counters. Simulated mode passes empty arrays."""

    tape: np.ndarray  # TAPE_DTYPE, the messages in time order
    times: np.ndarray  # float64, the tape's times (contiguous, for the start-time search)
    settings: np.ndarray  # int64, RS
    span: np.ndarray  # float64 (2,): earliest and latest start time
    ck_offsets: np.ndarray  # int64 (n_checkpoints + 1,): rows of each checkpoint in ck_orders
    ck_orders: np.ndarray  # int64 (rows, 4): CK columns, each level front to back
    ck_quotes: np.ndarray  # int64 (n_checkpoints, 2): last known bid, ask before it
    ck_halt: np.ndarray  # int64 (n_checkpoints,): the trading state (TRADING) before it
    consumed: np.ndarray  # int64 (n_envs, CONSUMED_SLOTS): a ring of consumed ids
    counters: np.ndarray  # int64 (n_envs, len(STAT_NAMES)): the rebuild's counters


# replay settings: book ticks per source price unit, messages between checkpoints, the book's
# window base, the pool a restored checkpoint needs
RS = layout("ReplaySettings", "tick every base capacity")
CK = layout("Checkpoint", "order_id side price qty")
# A tape's trading state, set by its halt messages (event 7: price -1 halts trading, 0 resumes
# quoting, 1 resumes trading). Halted: only cancels reach the book. Quoting: orders that do
# not cross may rest, be modified or cancelled, but nothing executes.
TRADING = layout("TradingState", "open halted quoting")
CONSUMED_SLOTS = 1024  # consumed tape orders an episode remembers (a ring: the oldest go)


def new_episode(n: int, n_warm: int) -> Episode:
    """Zeroed episode arrays for `n` envs whose warm-up takes `n_warm` steps."""
    msgs = np.zeros((n, 2 * MSG_SLOTS), dtype=MESSAGE_DTYPE)
    msgs["owner"] = AGENT
    ei = np.zeros((n, len(EI)), dtype=np.int64)
    ef = np.zeros((n, len(EF)))
    obs = np.zeros((n, N_OBS), dtype=np.float32)
    return Episode(
        actions=np.zeros((n, 3), dtype=np.float32),
        msgs=msgs,
        ei=ei,
        ef=ef,
        tob=np.zeros((n, len(TOB)), dtype=np.int64),
        own=np.zeros((n, len(OWN)), dtype=np.int64),
        mids=np.zeros((n, n_warm + 1)),
        obs=obs,
        final_obs=np.zeros_like(obs),
        final_ei=np.zeros_like(ei),
        final_ef=np.zeros_like(ef),
        nx_raw=np.zeros((n, N_RAW), dtype=np.uint64),
    )
