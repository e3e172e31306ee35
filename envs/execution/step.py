"""The Execution-v0 step kernel: N order books, each a row of 2-D arrays, advanced in one call.

A step is a state machine over ``PHASE``: decide, latency flow, the agent's messages, flow,
forced completion at the horizon, the reward and observation; a reset is two more phases
(``reset.py``). ``step_env_nb`` runs one env from its phase until the step is done; each phase
is one small kernel. A book kernel that runs out of room (pool, price window, trade buffer)
stops *before* drawing anything: the env keeps its phase, the need is returned, Python grows
the arrays of every env and calls again, and the env resumes where it stopped, so array sizes
never change a trajectory.

Per env the kernels work on row views (``orders[i]``, ...) handed to the book's own 1-D
kernels, so ``ExecutionEnv`` (which runs this kernel on one-row arrays) and
``ExecutionVectorEnv`` cannot drift apart. Only the single env sets `hooked`: the kernel then
stops with ``STATUS.need_hook`` before every batch holding a new order or modify, Python's
pre-trade hook rewrites it, and the kernel resumes.
"""

from __future__ import annotations

from numba import njit, prange

from trendgym.envs.execution.layout import (
    CFG,
    EF,
    EI,
    FLOW_PHASES,
    MAX_COMPLETION_SECONDS,
    OWN,
    PHASE,
    TRADING,
)
from trendgym.envs.execution.observe import finish_step_nb, refresh_own_nb
from trendgym.envs.execution.orders import (
    act_nb,
    book_fills_nb,
    cancel_own_msg_nb,
    decide_nb,
    hold_for_hook_nb,
    new_msg_nb,
    submit_nb,
)
from trendgym.envs.execution.replay import (
    after_replay_flow_nb,
    note_consumed_nb,
    reject_in_halt_nb,
    replay_reset_nb,
    replay_run_nb,
)
from trendgym.envs.execution.reset import start_reset_nb, warm_step_nb
from trendgym.envs.lob import kernels as k
from trendgym.envs.lob.flow import FS, IS, MAX_DEPTH, flow_run_nb
from trendgym.envs.lob.layout import STATUS, Book, FlowState
from trendgym.envs.prefetch import prefetch_nb


@njit(cache=True, _nrt=False, inline="always")
def run_flow_nb(i, book, trades, flow, ep):
    """Run env `i`'s background flow up to ``ef[i, EF.t_end]``; done or the room it needs."""
    b, f = book, flow
    row = Book(b.orders[i], b.levels[i], b.keys[i], b.slots[i], b.meta[i], b.owner_stats[i])
    frow = FlowState(f.rng[i], f.params[i], f.fstate[i], f.istate[i], f.q_bid[i], f.q_ask[i])
    # earlier trades were already counted by the flow kernel: the buffer restarts at 0
    _, status, _ = flow_run_nb(row, trades[i], 0, frow, ep.ef[i, EF.t_end], ep.msgs[i, :0])
    return status


@njit(cache=True, _nrt=False, inline="always")
def take_flow_nb(i, book, fstate, ep, cfg):
    """Book what the flow did for the agent: market volume, the agent's fills, the OFI; then
    move on from the flow phase that ran."""
    ei, ef = ep.ei, ep.ef
    ei[i, EI.market_qty] += int(fstate[i, FS.traded_qty])
    ef[i, EF.market_value] += fstate[i, FS.traded_value]
    fstate[i, FS.traded_qty] = 0.0
    fstate[i, FS.traded_value] = 0.0
    book_fills_nb(i, book.owner_stats, ei, ef, cfg[CFG.fee_bps])
    ef[i, EF.last_ofi] = fstate[i, FS.ofi]
    fstate[i, FS.ofi] = 0.0
    phase = ei[i, EI.phase]
    if phase == PHASE.latency_flow:
        ei[i, EI.phase] = PHASE.act
    elif phase == PHASE.complete_flow:
        ei[i, EI.phase] = PHASE.complete_market
    else:
        ei[i, EI.t] += 1
        if ei[i, EI.t] >= int(cfg[CFG.horizon]):
            ei[i, EI.terminated] = 1
            ei[i, EI.filled_end] = ei[i, EI.qty] - ei[i, EI.remaining]
            ei[i, EI.phase] = PHASE.complete_cancel
        else:
            ei[i, EI.phase] = PHASE.finish


@njit(cache=True, _nrt=False, inline="always")
def flow_phase_nb(i, book, trades, flow, ep, cfg, replay):
    """A phase that runs flow (or replays the tape): the warm-up step of a reset, or one
    within a step."""
    replaying = replay.tape.shape[0] > 0
    if replaying:
        status = replay_run_nb(i, book, trades, flow, ep, replay)
    else:
        status = run_flow_nb(i, book, trades, flow, ep)
    if status != STATUS.done:
        return status
    if ep.ei[i, EI.phase] == PHASE.warm_flow:
        warm_step_nb(i, book, flow, ep, cfg)
    else:
        take_flow_nb(i, book, flow.fstate, ep, cfg)
    if replaying:
        after_replay_flow_nb(i, ep, replay)
    return STATUS.done


@njit(cache=True, _nrt=False, inline="always")
def act_phase_nb(i, book, ep):
    """Turn the decision into messages; a wait goes straight to the step's flow."""
    ei = ep.ei
    n = act_nb(i, book, ep)
    ei[i, EI.n_msgs] = n
    ei[i, EI.msg_start] = 0
    ei[i, EI.n_trades] = 0
    if n > 0:
        ei[i, EI.phase] = PHASE.act_submit
    elif ei[i, EI.act_only] != 0:
        ei[i, EI.phase] = PHASE.idle
    else:
        ei[i, EI.phase] = PHASE.flow_start


@njit(cache=True, _nrt=False, inline="always")
def submit_phase_nb(i, book, trades, fstate, ep, cfg, hooked, replaying):
    """Send the waiting batch (the action's, or a completion order) and move on."""
    ei = ep.ei
    if hooked and ei[i, EI.hooked] == 0 and hold_for_hook_nb(i, ep.msgs, ei):
        return STATUS.need_hook
    reached = ei[i, EI.n_msgs] > 0  # zero only when the hook dropped the whole batch
    if replaying:
        reject_in_halt_nb(i, book, ep)
    status = submit_nb(i, book, trades, ep, cfg[CFG.fee_bps])
    if status != STATUS.done:
        return status
    ei[i, EI.hooked] = 0
    ei[i, EI.n_msgs] = 0
    if ei[i, EI.phase] == PHASE.act_submit:
        ei[i, EI.phase] = PHASE.idle if ei[i, EI.act_only] != 0 else PHASE.flow_start
    elif not reached:  # compliance held the completion back: mark the rest at the mid
        ei[i, EI.phase] = PHASE.finish
    elif ei[i, EI.remaining] != 0:
        ep.ef[i, EF.t_end] = fstate[i, FS.time] + 1.0
        ei[i, EI.phase] = PHASE.complete_flow
    else:
        ei[i, EI.phase] = PHASE.complete_market
    return STATUS.done


@njit(cache=True, _nrt=False, inline="always")
def complete_cancel_nb(i, book, trades, ep, cfg):
    """At the horizon: cancel the resting child (a cancel never needs room), then complete."""
    ei = ep.ei
    refresh_own_nb(i, book, ei, ep.own)
    ei[i, EI.iter] = 0
    ei[i, EI.phase] = PHASE.complete_market
    if ep.own[i, OWN.qty] != 0:
        ei[i, EI.n_msgs] = cancel_own_msg_nb(i, ep.msgs, ei, 0)
        ei[i, EI.msg_start] = 0
        ei[i, EI.n_trades] = 0
        submit_nb(i, book, trades, ep, cfg[CFG.fee_bps])
        ei[i, EI.n_msgs] = 0


@njit(cache=True, _nrt=False, inline="always")
def complete_market_nb(i, ep, fstate):
    """A market order for what remains, once a second of flow, until nothing remains. While
    a replayed tape halts trading, no order goes out and the halt's seconds do not count
    toward giving up: the rest completes at the first second trading is open again."""
    ei = ep.ei
    if ei[i, EI.remaining] == 0:
        ei[i, EI.phase] = PHASE.finish
        return STATUS.done
    if ei[i, EI.halt] != TRADING.open:
        ep.ef[i, EF.t_end] = fstate[i, FS.time] + 1.0
        ei[i, EI.phase] = PHASE.complete_flow
        return STATUS.done
    if ei[i, EI.iter] >= MAX_COMPLETION_SECONDS:
        return STATUS.stuck
    ei[i, EI.iter] += 1
    ei[i, EI.n_msgs] = new_msg_nb(i, ep.msgs, ei, 0, k.MARKET, 0, ei[i, EI.remaining])
    ei[i, EI.msg_start] = 0
    ei[i, EI.n_trades] = 0
    ei[i, EI.phase] = PHASE.complete_submit
    return STATUS.done


@njit(cache=True, _nrt=False)
def step_env_nb(i, book, trades, flow, ep, preset_params, cfg, same_step, hooked, replay):
    """Advance env `i` from its phase until its step (or reset) is done, or a kernel stops:
    returns ``STATUS.done``, the room a book needs, ``need_hook`` (only when `hooked`) or
    ``stuck``. A non-empty ``replay.tape`` replays it instead of running the flow."""
    ei = ep.ei
    replaying = replay.tape.shape[0] > 0
    while True:
        phase = ei[i, EI.phase]
        status = STATUS.done
        if phase == PHASE.idle:
            return STATUS.done
        if phase == PHASE.decide:
            decide_nb(i, ep, flow.fstate, flow.istate, cfg[CFG.latency])
        elif phase in FLOW_PHASES:
            status = flow_phase_nb(i, book, trades, flow, ep, cfg, replay)
        elif phase == PHASE.act:
            act_phase_nb(i, book, ep)
        elif phase == PHASE.act_submit or phase == PHASE.complete_submit:
            status = submit_phase_nb(i, book, trades, flow.fstate, ep, cfg, hooked, replaying)
            if replaying and status == STATUS.done:
                note_consumed_nb(i, book, trades, ep, replay)
        elif phase == PHASE.flow_start:
            step_flow = cfg[CFG.step_seconds] - cfg[CFG.latency]
            ep.ef[i, EF.t_end] = flow.fstate[i, FS.time] + step_flow
            ei[i, EI.phase] = PHASE.flow
        elif phase == PHASE.complete_cancel:
            complete_cancel_nb(i, book, trades, ep, cfg)
        elif phase == PHASE.complete_market:
            status = complete_market_nb(i, ep, flow.fstate)
        elif phase == PHASE.finish:
            finish_step_nb(i, book, flow.istate, ep, cfg, same_step)
        elif phase == PHASE.reset and replaying:
            status = replay_reset_nb(i, book, trades, flow, ep, cfg, replay)
        elif phase == PHASE.reset:
            status = start_reset_nb(i, book, trades, flow, ep, preset_params, cfg)
        else:
            return STATUS.stuck  # unreachable: an unknown phase
        if status != STATUS.done:
            return status


@njit(cache=True, _nrt=False, inline="always")
def _prefetch_env_nb(j, book, flow, ei, ef):
    """Hint env j's book into the cache before its turn: every pool slot (the live orders
    are scattered through the pool), the price levels around its quotes, and its state rows.
    With many books, a book's arrays have left the caches by its turn."""
    orders, levels, meta, istate = book.orders, book.levels, book.meta, flow.istate
    for s in range(orders.shape[1]):
        prefetch_nb(orders, j, s)
    base = meta[j, k.BASE]
    bid = meta[j, k.BEST_BID] if meta[j, k.BEST_BID] > 0 else istate[j, IS.last_bid]
    ask = meta[j, k.BEST_ASK] if meta[j, k.BEST_ASK] > 0 else istate[j, IS.last_ask]
    lo = max(0, bid - base - 2 * MAX_DEPTH)
    hi = min(levels.shape[1], ask - base + 2 * MAX_DEPTH + 1)
    for lv in range(lo, hi, 2):  # two 32-byte levels per cache line
        prefetch_nb(levels, j, lv)
    for row in (flow.fstate, flow.params, ef):
        prefetch_nb(row, j, 0)
    prefetch_nb(ei, j, 0)


@njit(cache=True, _nrt=False, inline="always")
def _run_env_nb(i, status, book, trades, flow, ep, preset_params, cfg, same_step, replay):
    if i + 1 < status.shape[0]:
        _prefetch_env_nb(i + 1, book, flow, ep.ei, ep.ef)
    status[i] = step_env_nb(i, book, trades, flow, ep, preset_params, cfg, same_step, False, replay)


@njit(cache=True, parallel=True, _nrt=False)
def vector_run_nb(status, book, trades, flow, ep, preset_params, cfg, same_step, replay):
    """Advance every env whose phase is not idle (``step_env_nb``), envs spread over all cores;
    `status[i]` gets env i's outcome (done or the room its book needs)."""
    for i in prange(status.shape[0]):
        _run_env_nb(i, status, book, trades, flow, ep, preset_params, cfg, same_step, replay)


@njit(cache=True, _nrt=False)
def vector_run_serial_nb(status, book, trades, flow, ep, preset_params, cfg, same_step, replay):
    """``vector_run_nb`` on one thread (few envs, or cores busy with other work)."""
    for i in range(status.shape[0]):
        _run_env_nb(i, status, book, trades, flow, ep, preset_params, cfg, same_step, replay)
