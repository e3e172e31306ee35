"""``ExecutionVectorEnv``: N ``trendgym/Execution-v0`` order books stepped by one numba call."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numba
import numpy as np
from gymnasium.vector import AutoresetMode

from trendgym.envs.execution.env import (
    INFO_KEYS,
    ExecutionEnv,
    episode_infos,
    needed_prices,
    trade_room_needed,
)
from trendgym.envs.execution.layout import EF, EI, N_RAW, PHASE, PRESET_NAMES, new_episode
from trendgym.envs.execution.replay_data import empty_replay
from trendgym.envs.execution.step import vector_run_nb, vector_run_serial_nb
from trendgym.envs.fastcall import compiled_entry
from trendgym.envs.lob import kernels as k
from trendgym.envs.lob.book import grow_pool, grow_trades, id_table_size
from trendgym.envs.lob.flow import MAX_DEPTH, N_FSTATE, N_ISTATE
from trendgym.envs.lob.layout import STATUS, Book, FlowState
from trendgym.envs.lob.retry import run_to_done
from trendgym.envs.vector.native import NativeVectorEnv

PRANGE_CHUNK = 4  # envs per prange work item
PARALLEL_MIN_ENVS = 64  # below this, waking a busy second core costs more than it saves
CAPACITY = 128  # initial resting orders per book (grows for all books when one needs more)
# Initial price window per book, ticks (as OrderBook): a narrower one makes books that drift
# in an episode stop the batch for a recentre on many more steps.
PRICE_LEVELS = 1024
TRADE_ROOM = 256  # initial trade buffer per book
_WINDOW_PAD = 64  # ticks kept free on both sides of a recentred book
_INFO_AND_MASK_KEYS = tuple(x for key in INFO_KEYS for x in (key, f"_{key}"))


class ExecutionVectorEnv(NativeVectorEnv):
    """`num_envs` independent Execution-v0 episodes, each on its own book, stepped in one numba call.

    ## Description

    The native vector version of ``ExecutionEnv``: every book, flow and episode lives in rows of
    2-D arrays, and one numba call (``prange`` over envs) runs each env's whole step — the
    agent's messages, ``step_seconds`` of background flow, the forced completion at the
    horizon, the observation and reward — and the warm-up of envs that reset. Trajectories are
    identical bit for bit to a ``SyncVectorEnv`` of ``ExecutionEnv``s with the same kwargs and
    seeds: observations, rewards, terminations and infos.

    ## Action Space

    ``Box(-1, 1, (num_envs, 3), float32)``: one row per env, as the single env (cast to float32
    first, as it does). NaN or values outside [-1, 1] raise ``ValueError`` naming the env; the
    batch then changes nothing.

    ## Observation Space

    ``Box(float32, (num_envs, 12))``: one row per env, the single env's observation.

    ## Rewards

    As the single env: the change of implementation shortfall, bps (float64 per env).

    ## Starting State

    As the single env. ``reset(seed=s)`` seeds env i with ``s + i`` (as ``SyncVectorEnv``), or with
    ``seed[i]`` given a list; ``options={"reset_mask": mask}`` resets only those envs. Each env's
    next episode (side, quantity, preset, urgency, flow seed) is drawn from its generator right
    after a reset, in the single env's order, so an autoreset needs no Python draw.

    ## Episode End

    Terminated after ``horizon`` decisions, never truncated. Autoreset follows
    ``metadata["autoreset_mode"]``: ``NEXT_STEP`` (default), ``SAME_STEP`` (the last observation and
    info go to ``info["final_obs"]``/``info["final_info"]``) or ``DISABLED``. Infos are Gymnasium
    vector infos with the single env's keys (``ExecutionEnv``'s info table) every step, all
    numeric, each with its ``_key`` mask.

    ## Arguments

    ``num_envs``, ``autoreset_mode=NEXT_STEP``, ``parallel=None`` (True: ``prange``; False: one
    thread; None: from ``PARALLEL_MIN_ENVS`` envs, whichever measured faster lately — a
    ``prange`` step waits for its slowest thread, so with other jobs on the cores one thread can
    win; results are identical either way), and every ``ExecutionEnv`` keyword
    except ``render_mode`` (no rendering) and ``compliance`` (a Python hook per order: use
    ``gymnasium.make_vec(..., vectorization_mode="sync")``). With ``replay=``, every env replays
    the same tape (one copy, one set of checkpoints), each from its own seeded start time.

    ## Version History

    * v0: first release.
    """

    single_env = ExecutionEnv
    parallel_min_envs = PARALLEL_MIN_ENVS
    compliance_refusal = (
        "compliance= hooks every order in Python: use gymnasium.make_vec(..., "
        "vectorization_mode='sync') for a compliance-wrapped vector env"
    )

    def __init__(
        self,
        num_envs: int,
        *,
        autoreset_mode: Any = AutoresetMode.NEXT_STEP,
        parallel: bool | None = None,
        **env_kwargs: Any,
    ) -> None:
        super().__init__(num_envs, env_kwargs, autoreset_mode=autoreset_mode, parallel=parallel)
        t, n = self.template, self.num_envs
        self.horizon, self.tick_size = t.horizon, t.tick_size
        self._warm_steps = t.n_warm
        self.cfg, self.preset_params = t.cfg, t.preset_params

        self.orders = np.zeros((n, CAPACITY), dtype=k.ORDER_DTYPE)
        replay = t.replay_data
        width = PRICE_LEVELS if replay is None else max(PRICE_LEVELS, replay.price_levels)
        self.levels = np.zeros((n, width), dtype=k.LEVEL_DTYPE)
        self.keys = np.full((n, id_table_size(CAPACITY)), k.EMPTY_KEY, dtype=np.int64)
        self.slots = np.full(self.keys.shape, -1, dtype=np.int64)
        self.meta = np.zeros((n, k.N_META), dtype=np.int64)
        self.owner_stats = np.zeros((n, k.MAX_OWNERS, k.N_OWNER_STATS), dtype=np.int64)
        self.trades = np.zeros((n, TRADE_ROOM), dtype=k.TRADE_DTYPE)
        self.flow = FlowState(
            rng=np.zeros((n, 4), dtype=np.uint64),
            params=np.zeros((n, self.preset_params.shape[1] - 1)),
            fstate=np.zeros((n, N_FSTATE)),
            istate=np.zeros((n, N_ISTATE), dtype=np.int64),
            q_bid=np.zeros((n, MAX_DEPTH), dtype=np.int64),
            q_ask=np.zeros((n, MAX_DEPTH), dtype=np.int64),
        )
        # the episode rows; `nx_raw` holds each env's next episode's raw generator words,
        # drawn right after its last reset
        self._ep = new_episode(n, t.n_warm)
        # one tape for every env: only the consumed-id rings and counters are per env
        self._replay = empty_replay(n) if replay is None else replay.rows(n)
        self.ei, self.ef = self._ep.ei, self._ep.ef
        self._status = np.zeros(n, dtype=np.int64)
        self.episodes = np.zeros(n, dtype=np.int64)
        self._autoreset = np.zeros(n, dtype=bool)
        self._any_autoreset = False  # _autoreset.any(), kept so most steps skip the masks
        self._started = np.zeros(n, dtype=bool)
        self._done = np.zeros(n, dtype=bool)
        self._running = False  # every env has an episode to step (skips the per-step check)
        self.growths = {"pool": 0, "window": 0, "trades": 0, "recentre": 0}
        self._entries: dict[bool, Any] = {}  # each kernel's compiled function (`compiled_entry`)

    @property
    def book(self) -> Book:
        """Every env's book, one row per env."""
        return Book(self.orders, self.levels, self.keys, self.slots, self.meta, self.owner_stats)

    # ---------------------------------------------------------------- episode draws
    def _draw_next(self, i: int) -> None:
        """Env i's next episode: the raw words ``ExecutionEnv.reset`` takes from its generator."""
        self._ep.nx_raw[i] = self._generators[i].bit_generator.random_raw(N_RAW)

    # ---------------------------------------------------------------- running the kernel
    def _run(self, same_step: bool) -> None:
        """Call the batched kernel until every env's phase is done, growing books in between."""
        use_prange = self._threads.use_prange()
        kernel = vector_run_nb if use_prange else vector_run_serial_nb
        # a reset runs the whole warm-up: weigh it so steps with many resets compare fairly
        work = 0
        if self._threads.auto:
            resets = int((self.ei[:, EI.phase] == PHASE.reset).sum())
            work = self.num_envs + self._warm_steps * resets
        if use_prange:
            # small chunks: an env that resets runs its whole warm-up, so equal halves of the
            # batch can hold very unequal work
            numba.set_parallel_chunksize(PRANGE_CHUNK)
        start = time.perf_counter()
        status = self._status

        def call() -> int:
            state = (self.book, self.trades, self.flow, self._ep)  # the book may have grown
            args = (status, *state, self.preset_params, self.cfg, same_step, self._replay)
            entry = self._entries.get(use_prange)
            if entry is None:  # grown arrays keep their types: resolved once per kernel
                entry = self._entries[use_prange] = compiled_entry(kernel, args)
            entry(*args)
            return int(status.max()) if status.any() else STATUS.done

        run_to_done(call, self._make_room)
        self._threads.record(use_prange, time.perf_counter() - start, work)

    def _make_room(self, _worst: int) -> None:
        """Grow what every env that stopped asked for (all envs share the array sizes)."""
        status = self._status
        if (status == STATUS.stuck).any():
            i = int(np.flatnonzero(status == STATUS.stuck)[0])
            raise RuntimeError(f"env {i}: the book stayed empty for an hour of simulated time")
        if (status == STATUS.need_slot).any():
            self._grow_pool()
        if (status == STATUS.need_trade_room).any():
            self._grow_trades()
        for i in np.flatnonzero(status == STATUS.need_window):
            self._cover_prices(int(i))

    def _grow_pool(self) -> None:
        """Double every book's order pool (as ``OrderBook._grow_pool``: contents unchanged)."""
        n, cap = self.orders.shape
        self.orders = grow_pool(self.orders, self.meta[:, k.FREE_HEAD], 2 * cap)
        self.meta[:, k.FREE_HEAD] = cap
        self.keys = np.full((n, id_table_size(2 * cap)), k.EMPTY_KEY, dtype=np.int64)
        self.slots = np.full(self.keys.shape, -1, dtype=np.int64)
        for i in range(n):
            k.rehash_nb(self.orders[i], self.keys[i], self.slots[i], self.meta[i])
        self.growths["pool"] += 1

    def _grow_trades(self) -> None:
        needed = max(trade_room_needed(e, m) for e, m in zip(self.ei, self.meta, strict=True))
        self.trades = grow_trades(self.trades, self.trades.shape[1], needed)
        self.growths["trades"] += 1

    def _cover_prices(self, i: int) -> None:
        """Widen every book's price window so env i's needed prices fit (grows toward them)."""
        meta = self.meta[i]
        lo, hi = needed_prices(self.ei[i], meta, self.flow.istate[i])
        size = self.levels.shape[1]
        # Book i's own span (its live orders and the prices it needs) usually still fits the
        # shared width: then move its window instead of widening every book's (widening
        # for each book that drifts would compound across many books into gigabytes).
        live = self.orders[i]["qty"] > 0
        prices = self.orders[i]["price"][live]
        span_lo = min(lo, int(prices.min())) if prices.size else lo
        span_hi = max(hi, int(prices.max())) if prices.size else hi
        if span_hi - span_lo + 1 + 2 * _WINDOW_PAD <= size:
            self._recentre(i, max(1, (span_lo + span_hi) // 2 - size // 2))
        else:
            self._widen(i, lo, hi)

    def _recentre(self, i: int, new_base: int) -> None:
        """Move book i's window to start at `new_base` (its levels keep their prices)."""
        size = self.levels.shape[1]
        row = np.zeros(size, dtype=k.LEVEL_DTYPE)
        row["head"] = row["tail"] = -1
        shift = int(self.meta[i, k.BASE]) - new_base  # old level j holds price base + j
        src_lo, src_hi = max(0, -shift), min(size, size - shift)
        row[src_lo + shift : src_hi + shift] = self.levels[i, src_lo:src_hi]
        self.levels[i] = row
        self.meta[i, k.BASE] = new_base
        self.growths["recentre"] += 1

    def _widen(self, i: int, lo: int, hi: int) -> None:
        """Widen every book's window (at least doubling) so book i covers [lo, hi]."""
        n_env, size = self.levels.shape
        base = int(self.meta[i, k.BASE])
        lo2, hi2 = min(base, lo - _WINDOW_PAD), max(base + size - 1, hi + _WINDOW_PAD)
        new_size = max(hi2 - lo2 + 1, 2 * size)
        new_base = max(1, lo2 if lo >= base else hi2 + 1 - new_size)
        new_size = max(new_size, hi + 1 - new_base)
        levels = np.zeros((n_env, new_size), dtype=k.LEVEL_DTYPE)
        levels["head"] = levels["tail"] = -1
        levels[:, :size] = self.levels  # other books keep their base
        shift = base - new_base
        if shift:  # book i's old window moves up by `shift` levels in the new one
            levels[i] = levels[i, -1]  # a blank level (the old rows end before the last)
            levels[i, shift : shift + size] = self.levels[i]
        self.meta[i, k.BASE] = new_base
        self.levels = levels
        self.growths["window"] += 1

    # ---------------------------------------------------------------- resets
    def _finish_resets(self) -> None:
        """Envs whose reset just ran: count the episode, draw the next one's raw words."""
        done = self.ei[:, EI.reset_done] == 1
        if not done.any():  # most steps
            return
        self.ei[done, EI.reset_done] = 0
        self.episodes[done] += 1
        for i in np.flatnonzero(done):
            self._draw_next(int(i))

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        mask = self.reset_mask_of(options)
        for i, fresh in enumerate(self.seed_envs(seed, mask)):
            if fresh:  # a new generator: its next episode is drawn from it again
                self._draw_next(i)
        self.ei[:, EI.phase] = PHASE.idle
        self.ei[mask, EI.phase] = PHASE.reset
        self._run(False)
        self._finish_resets()
        self._started[mask] = True
        self._autoreset[mask] = False
        self._any_autoreset = bool(self._autoreset.any())
        self._done[mask] = False
        self._running = bool(self._started.all() and not self._done.any())
        return self._ep.obs.copy(), self._infos(mask)

    # ---------------------------------------------------------------- the step
    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        a = np.asarray(actions, dtype=np.float32)
        if a.shape != self.action_space.shape:
            raise ValueError(f"actions must have shape {self.action_space.shape}, got {a.shape}")
        ok = (a >= -1.0) & (a <= 1.0)  # NaN fails too
        if not ok.all():
            i = int(np.flatnonzero(~ok.all(axis=1))[0])
            why = "NaN or inf" if not np.isfinite(a[i]).all() else "values outside [-1, 1]"
            raise ValueError(f"action of env {i} has {why}: {a[i].tolist()}")
        mode = self.metadata["autoreset_mode"]
        # None: no env starts its next episode first (most steps)
        next_step = mode is AutoresetMode.NEXT_STEP and self._any_autoreset
        reset_first = self._autoreset if next_step else None
        if not self._running:
            resetting = np.zeros(self.num_envs, bool) if reset_first is None else reset_first
            blocked = ~self._started | (self._done & ~resetting)
            if blocked.any():
                i = int(np.flatnonzero(blocked)[0])
                raise RuntimeError(f"env {i} has no running episode: reset it before step()")
        self._ep.actions[:] = a
        same_step = mode is AutoresetMode.SAME_STEP
        if reset_first is None:
            self.ei[:, EI.phase] = PHASE.decide
        else:
            self.ei[:, EI.phase] = np.where(reset_first, PHASE.reset, PHASE.decide)
        self._run(same_step)
        rewards = self.ef[:, EF.reward].copy()
        terminated = self.ei[:, EI.terminated] == 1
        if reset_first is not None:
            rewards[reset_first] = 0.0
            terminated[reset_first] = False
        any_ended = bool(terminated.any())
        final = final_obs = None
        if same_step and any_ended:
            final = self._infos(terminated, terminated, self._ep.final_ei, self._ep.final_ef)
            final_obs = self._ep.final_obs.copy()
        self._finish_resets()
        obs = self._ep.obs.copy()
        # next-step autoreset leaves the ended envs' terminal rows in place; same-step has
        # reset them, and their terminal infos go to final_info
        infos = self._infos(None, None if same_step else terminated)
        if final is not None:
            fo = np.full(self.num_envs, None, dtype=object)
            for i in np.flatnonzero(terminated):
                fo[i] = final_obs[i]
            infos["final_obs"], infos["_final_obs"] = fo, terminated.copy()
            infos["final_info"], infos["_final_info"] = final, terminated.copy()
        self._autoreset, self._any_autoreset = terminated, any_ended
        if mode is AutoresetMode.DISABLED:
            self._done = terminated.copy()
            self._running = not self._done.any()
        return obs, rewards, terminated, np.zeros(self.num_envs, dtype=bool), infos

    # ---------------------------------------------------------------- infos
    def _infos(
        self,
        shown: np.ndarray | None = None,
        ended: np.ndarray | None = None,
        ei: np.ndarray | None = None,
        ef: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """Vector infos as ``SyncVectorEnv`` merges the single envs' (every key, every step):
        the rows of the `shown` envs (all when None; the others blank), `ended` ones terminal."""
        ei = self.ei if ei is None else ei
        ef = self.ef if ef is None else ef
        n = self.num_envs
        ended = np.zeros(n, dtype=bool) if ended is None else ended
        rows = episode_infos(ei, ef, self.tick_size, ended, calibrated=self.template.calibrated)
        values = list(rows.values())
        if shown is not None:
            values = [np.where(shown, v, v.dtype.type(0)) for v in values]
        masks = np.empty((len(values), n), dtype=bool)  # one row per key, one allocation
        masks[:] = True if shown is None else shown
        # key, _key, key, _key, ... as SyncVectorEnv orders them
        pairs = [x for pair in zip(values, masks, strict=True) for x in pair]
        return dict(zip(_INFO_AND_MASK_KEYS, pairs, strict=True))

    # ---------------------------------------------------------------- per-env access
    def per_env_attrs(self) -> dict[str, Any]:
        """Per-env episode state for ``get_attr`` (`remaining`, `side`, `quantity`, `preset`, ...)."""
        ei, ef = self.ei, self.ef
        ints = {"remaining": EI.remaining, "side": EI.side, "quantity": EI.qty, "t": EI.t}
        floats = {
            "urgency": EF.urgency,
            "arrival_ticks": EF.arrival,
            "vol_bps": EF.vol_bps,
            "touch_depth": EF.touch_depth,
            "shortfall": EF.shortfall,
            "step_volume": EF.step_volume,
        }
        attrs = super().per_env_attrs()
        attrs.update({name: (lambda i, c=c: int(ei[i, c])) for name, c in ints.items()})
        attrs.update({name: (lambda i, c=c: float(ef[i, c])) for name, c in floats.items()})
        if self.template.calibrated:
            attrs["preset"] = lambda i: "calibrated"
        else:
            attrs["preset"] = lambda i: (
                "replay" if ei[i, EI.preset] < 0 else PRESET_NAMES[int(ei[i, EI.preset])]
            )
        attrs["replay_start_time"] = lambda i: float(ef[i, EF.start_time])
        attrs["replay_consumed"] = lambda i: int(ei[i, EI.consumed_msgs])
        attrs["replay_halted"] = lambda i: int(ei[i, EI.halt])
        attrs["replay_rejected"] = lambda i: int(ei[i, EI.rejected])
        attrs["episodes"] = lambda i: int(self.episodes[i])
        return attrs
