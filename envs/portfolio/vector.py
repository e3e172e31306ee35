"""``PortfolioVectorEnv``: N ``trendgym/Portfolio-v0`` portfolios stepped by one numba call."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numba
import numpy as np
from gymnasium.vector import AutoresetMode

from trendgym.envs.fastcall import compiled_entry
from trendgym.envs.portfolio.env import (
    INFO_KEYS,
    OPEN_EPISODE_INFO,
    PortfolioEnv,
    checked_action,
    summarize_episode,
)
from trendgym.envs.portfolio.kernels import vector_reset_nb, vector_step_nb, vector_step_serial_nb
from trendgym.envs.portfolio.layout import (
    ActionCode,
    Ends,
    FState,
    IState,
    Out,
    PortfolioState,
    Resets,
    StepBuffers,
)
from trendgym.envs.vector.native import NativeVectorEnv

# below this many envs, waking the other cores costs more than it saves (benchmarks/vector.py)
PARALLEL_MIN_ENVS = 32
# prange hands each thread this many contiguous chunks of envs (one kernel call per chunk)
CHUNKS_PER_THREAD = 4
_MASK_KEYS = tuple(f"_{key}" for key in INFO_KEYS)  # Gymnasium's "this env has it" masks


class PortfolioVectorEnv(NativeVectorEnv):
    """`num_envs` independent Portfolio-v0 episodes on one dataset, stepped in one numba call.

    ## Description

    The native vector version of ``PortfolioEnv``: the dataset, features and costs are built once
    (by one ``PortfolioEnv`` holding them, `template`) and shared; each sub-env has its own
    window start, NAV, weights and episode accumulators, all in arrays. A step is one parallel
    numba call over the envs (``prange``: all cores; ``PortfolioEnv.step`` runs the same kernel
    on its one row). Trajectories are identical bit for bit to a ``SyncVectorEnv`` of
    ``PortfolioEnv``s with the same kwargs and seeds: same window draws, observations, rewards,
    terminations, truncations and infos.

    ## Action Space

    `Box(-1, 1, (num_envs, n_assets), float32)`: one row of target weights per env, as the single
    env's action. NaN or values outside [-1, 1] raise ``ValueError`` naming the env, and the batch
    changes nothing.

    ## Observation Space

    `Box(..., (num_envs, obs_dim), float32)`: one row per env, each the single env's observation
    (layout in `obs_layout`).

    ## Rewards

    As the single env (`reward=`): net log return or differential Sharpe, float64 per env.

    ## Starting State

    As the single env. ``reset(seed=s)`` seeds env i with ``s + i`` (as ``SyncVectorEnv``), or
    with ``seed[i]`` given a list; ``options={"reset_mask": mask}`` resets only those envs.

    ## Episode End

    As the single env; autoreset follows ``metadata["autoreset_mode"]``: ``NEXT_STEP`` (default;
    the step after an episode ends resets that env, reward 0, its action ignored),
    ``SAME_STEP`` (reset at once; the last observation and info go to ``info["final_obs"]`` and
    ``info["final_info"]``) or ``DISABLED`` (reset with ``reset_mask``; stepping an ended env
    raises ``RuntimeError``).

    Infos are Gymnasium vector infos (arrays with `_key` masks) of the single env's infos: every
    key of ``INFO_KEYS`` every step, from ``reset`` on (`date` as datetime64), the summary keys
    0 until an env's episode ends.

    ## Arguments

    - `num_envs`: number of portfolios.
    - `autoreset_mode=AutoresetMode.NEXT_STEP` (or "next_step", "same_step", "disabled").
    - `copy=True`: return a fresh observation array each step; False reuses one buffer (faster,
      but the array returned by the previous step is overwritten).
    - `parallel=None`: True spreads the envs over all cores (numba ``prange``), False keeps one
      thread. None (auto): one thread below `PARALLEL_MIN_ENVS` (32) envs; from there, the
      kernel with the lower recent step time, re-timing the other one after `PROBE_EVERY` steps
      (doubling, up to `PROBE_EVERY_MAX`, while it keeps losing)
      (a ``prange`` step waits for its slowest thread, so on a machine whose cores are busy with
      other processes one thread can be many times faster). Results are identical either way;
      `kernel_steps` counts the steps each kernel made.
    - every ``PortfolioEnv`` keyword (`prices`, `costs_bps`, `window`, `preset`, ...).

    ## Version History

    - v0: first release.
    """

    single_env = PortfolioEnv
    parallel_min_envs = PARALLEL_MIN_ENVS
    settable_attrs = ("max_leverage", "target_vol", "dsr_eta")
    own_attrs = ("reward_kind", "render_mode", "window")

    def __init__(
        self,
        num_envs: int,
        *,
        autoreset_mode: Any = AutoresetMode.NEXT_STEP,
        copy: bool = True,
        parallel: bool | None = None,
        **env_kwargs: Any,
    ) -> None:
        super().__init__(num_envs, env_kwargs, autoreset_mode=autoreset_mode, parallel=parallel)
        template = self.template
        self.copy = bool(copy)
        self.max_leverage = template.max_leverage
        self.target_vol = template.target_vol
        self.dsr_eta = template.dsr_eta
        self.reward_kind = template.reward_kind
        self.window = template.window
        self.obs_layout = template.obs_layout
        self.dates = template.dates
        self._dates64 = template.prices.index.to_numpy(dtype="datetime64[ns]")

        n, n_assets = self.num_envs, template.action_space.shape[0]
        obs_dim = template.observation_space.shape[0]
        first, last = template._span
        self._first, self._last = first, last
        longest = self.window if self.window is not None else last - first
        self._state = PortfolioState(
            fstate=np.zeros((n, len(FState))),
            istate=np.zeros((n, len(IState)), dtype=np.int64),
            weights=np.zeros((n, n_assets)),
            rets=np.full((n, longest), 0.0),  # touched now, not page by page mid-episode
        )
        self._fstate, self._istate = self._state.fstate, self._state.istate
        self._obs = np.zeros((n, obs_dim), dtype=np.float32)
        self._buffers = StepBuffers(
            final_obs=np.zeros((n, obs_dim), dtype=np.float32),
            out=np.zeros((len(Out), n)),
            ends=np.zeros((len(Ends), n), dtype=bool),
            codes=np.zeros(n, dtype=np.int64),
        )
        self._step_out = self._buffers.out
        # the step kernels' compiled entries per (prange, action type), see ``fastcall``
        self._kernels: dict[tuple, Any] = {}
        self._next_start = np.full(n, first, dtype=np.int64)
        self._autoreset = np.zeros(n, dtype=bool)
        self._done = np.ones(n, dtype=bool)  # no episode yet: reset() first
        self._any_done = True
        self._any_autoreset = False
        self._everyone = np.ones(n, dtype=bool)
        self._everyone.flags.writeable = False
        # an open episode's summary values (all 0): shared read-only arrays
        self._open_summary = {
            key: np.full(n, OPEN_EPISODE_INFO[key])
            for key in ("total_return", "cagr", "sharpe", "max_drawdown", "compliance_violations")
        }
        for value in self._open_summary.values():
            value.flags.writeable = False
        self._open_everyone = self._open_template(self._everyone)
        # all-False mask, shared; never written (a read-only array would be a second numba type
        # of the kernels' `reset_first`, compiled a second time)
        self._no_reset = np.zeros(n, dtype=bool)
        # the resets of a step that resets nobody first (most steps), built once
        self._quiet_resets = Resets(self._no_reset, self._next_start, False)
        # numba's thread pool size, read from its config: asking numba.get_num_threads() would
        # start the pool (and costs microseconds a step); the count only sets the split
        self._n_chunks = CHUNKS_PER_THREAD * numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]

    # ---------------------------------------------------------------- seeding and starts
    def _draw_start(self, i: int) -> int:
        """Env i's next start row, drawn as ``PortfolioEnv.reset`` draws it."""
        if self.window is None:
            return self._first
        gen = self._generators[i]
        return int(gen.integers(self._first, self._last - self.window + 1))

    # ---------------------------------------------------------------- gym vector API
    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        mask = self.reset_mask_of(options)
        fresh = self.seed_envs(seed, mask)
        starts = self._next_start.copy()
        for i in np.flatnonzero(mask):
            if fresh[i]:  # a new generator: its pre-drawn start was another generator's
                starts[i] = self._draw_start(i)
            self._next_start[i] = self._draw_start(i)
        obs = self._obs if not self.copy else np.empty_like(self._obs)
        if self.copy:
            obs[:] = self._obs  # rows not reset keep their current observation
        vector_reset_nb(mask, starts, self._state, self.template._static_obs,
                        self.template._settings, obs)  # fmt: skip
        self._obs = obs
        # new arrays, not writes: these masks may be the shared `_no_reset`
        self._autoreset = self._autoreset & ~mask
        self._any_autoreset = bool(self._autoreset.any())
        self._done = self._done & ~mask
        self._any_done = bool(self._done.any())
        zeros = np.zeros(self.num_envs)
        infos = self._open_infos(mask.copy(), zeros, zeros.copy())
        return (obs.copy() if self.copy else obs), infos

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        a = checked_action(actions, self.action_space.shape, "actions")
        mode = self.metadata["autoreset_mode"]
        next_step = mode is AutoresetMode.NEXT_STEP
        any_reset_first = next_step and self._any_autoreset
        reset_first = self._autoreset if any_reset_first else self._no_reset
        if self._any_done:
            stepped_done = self._done & ~reset_first
            if stepped_done.any():
                i = int(np.flatnonzero(stepped_done)[0])
                raise RuntimeError(f"env {i}'s episode is over: reset it before step()")
        same_step = mode is AutoresetMode.SAME_STEP
        obs = np.empty_like(self._obs) if self.copy else self._obs
        use_prange = self._threads.use_prange()
        if not a.flags.c_contiguous:
            a = np.ascontiguousarray(a)
        resets = self._quiet_resets
        if reset_first is not self._no_reset:
            resets = Resets(reset_first, self._next_start, same_step)
        elif resets.same_step != same_step:
            resets = self._quiet_resets = Resets(self._no_reset, self._next_start, same_step)
        t = self.template
        args = (a, resets, self._state, t._data, t._settings, obs, self._buffers, self._n_chunks)
        key = (use_prange, a.dtype, a.flags.writeable)
        kernel = self._kernels.get(key)
        if kernel is None:
            dispatcher = vector_step_nb if use_prange else vector_step_serial_nb
            kernel = self._kernels[key] = compiled_entry(dispatcher, args)
        start = time.perf_counter()
        n_ended = kernel(*args)
        self._threads.record(use_prange, time.perf_counter() - start)
        if n_ended < 0:
            codes = self._buffers.codes
            bad = int(np.flatnonzero(codes)[0])
            why = "NaN" if codes[bad] == ActionCode.nan else "outside [-1, 1]"
            raise ValueError(f"action of env {bad} has weights {why}: {a[bad].tolist()}")
        # every row of `obs` was written: each env was stepped or reset (stepping an ended
        # env without a reset is refused above), so a fresh `np.empty` is safe
        self._obs = obs
        out = self._step_out
        terminated = self._buffers.ends[Ends.terminated].copy()
        truncated = self._buffers.ends[Ends.truncated].copy()
        any_ended = n_ended > 0
        ended = terminated | truncated if any_ended else self._no_reset
        infos = self._step_infos(reset_first, any_reset_first, ended, any_ended, same_step)
        if same_step and any_ended:
            self._refill_starts(ended)
        if any_reset_first:
            self._refill_starts(reset_first)
        self._autoreset = ended
        self._any_autoreset = any_ended
        if mode is AutoresetMode.DISABLED:
            self._done = ended
            self._any_done = any_ended
        return obs, out[Out.reward].copy(), terminated, truncated, infos

    def _refill_starts(self, used: np.ndarray) -> None:
        if self.window is None:
            return
        for i in np.flatnonzero(used):
            self._next_start[i] = self._draw_start(i)

    def _open_infos(
        self, shown: np.ndarray, turnover: np.ndarray, cost: np.ndarray
    ) -> dict[str, Any]:
        """Every info key (``INFO_KEYS``) for the envs in `shown`, as in an episode that has not
        ended: the summary keys 0 (shared read-only arrays, copied before any write)."""
        if shown is self._everyone:  # every step's case: one copy of the prepared dict
            infos = self._open_everyone.copy()
        else:
            infos = self._open_template(shown)
        infos["nav"] = self._fstate[:, FState.nav].copy()
        infos["date"] = self._dates64[self._istate[:, IState.t]]
        # the same arrays twice: `_add_summaries` copies before writing
        infos["turnover"] = infos["step_turnover"] = turnover
        infos["costs"] = infos["step_costs"] = cost
        infos["n_steps"] = self._istate[:, IState.k].copy()
        return infos

    def _open_template(self, shown: np.ndarray) -> dict[str, Any]:
        """`_open_infos`' keys in their order: the shared summary arrays and the masks set,
        the per-step values still None."""
        infos: dict[str, Any] = dict.fromkeys(INFO_KEYS[:6])
        infos.update(self._open_summary)
        infos["n_steps"] = None
        infos.update(dict.fromkeys(_MASK_KEYS, shown))
        return infos

    def _step_infos(
        self,
        reset_first: np.ndarray,
        any_reset_first: bool,
        ended: np.ndarray,
        any_ended: bool,
        same_step: bool,
    ) -> dict[str, Any]:
        """Vector infos exactly as ``SyncVectorEnv`` would merge the single envs' infos."""
        out = self._step_out
        # a reset env's info is its reset info: nothing traded
        stepped = None
        if any_reset_first:
            stepped = ~reset_first
        if same_step and any_ended:
            stepped = ~ended
        if stepped is None:
            turnover, cost = out[Out.turnover].copy(), out[Out.cost].copy()
        else:
            turnover = np.where(stepped, out[Out.turnover], 0.0)
            cost = np.where(stepped, out[Out.cost], 0.0)
        infos = self._open_infos(self._everyone, turnover, cost)
        if not any_ended:
            return infos
        idx = np.flatnonzero(ended)
        if not same_step:
            self._add_summaries(infos, idx)
            return infos
        final: dict[str, Any] = {
            key: np.where(ended, out[row], 0.0)
            for key, row in (("nav", Out.nav), ("turnover", Out.turnover), ("costs", Out.cost))
        }
        final["date"] = self._dates64[out[Out.t].astype(np.int64)]
        final["step_turnover"], final["step_costs"] = final["turnover"], final["costs"]
        for key, value in self._open_summary.items():
            final[key] = np.zeros_like(value)
        final["n_steps"] = np.where(ended, out[Out.k], 0).astype(np.int64)
        final.update(dict.fromkeys(_MASK_KEYS, ended))
        self._add_summaries(final, idx)
        final_obs = np.full(self.num_envs, None, dtype=object)
        for i in idx:
            final_obs[i] = self._buffers.final_obs[i].copy()
        infos["final_obs"], infos["_final_obs"] = final_obs, ended.copy()
        infos["final_info"], infos["_final_info"] = final, ended.copy()
        return infos

    def _add_summaries(self, infos: dict[str, Any], idx: np.ndarray) -> None:
        """The single env's terminal summary for the envs in `idx` (``turnover`` and ``costs``
        become the episode's; ``step_*`` keep the step's)."""
        out = self._step_out
        for key in ("turnover", "costs"):  # `step_*` keep the step's values
            infos[key] = infos[key].copy()
        for i in idx:
            k = int(out[Out.k, i])
            summary = summarize_episode(
                self._state.rets[i, :k], out[Out.turnover_sum, i], out[Out.cost_sum, i]
            )
            for key, value in summary.items():
                if not infos[key].flags.writeable:  # a shared array of the open summary
                    infos[key] = infos[key].copy()
                infos[key][i] = value

    # ---------------------------------------------------------------- per-env access
    def per_env_attrs(self) -> dict[str, Callable[[int], Any]]:
        return {
            **super().per_env_attrs(),
            "t": lambda i: int(self._istate[i, IState.t]),
            "nav": lambda i: float(self._fstate[i, FState.nav]),
            "weights": lambda i: self._state.weights[i].copy(),
        }

    def episode_summaries(self) -> tuple[dict[str, Any], ...]:
        """Each env's ``episode_summary`` so far (as ``PortfolioEnv.episode_summary``)."""
        return tuple(
            summarize_episode(
                self._state.rets[i, : self._istate[i, IState.k]],
                self._fstate[i, FState.turnover_sum],
                self._fstate[i, FState.cost_sum],
            )
            for i in range(self.num_envs)
        )

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """As ``NativeVectorEnv.call``, and `episode_summary` gives each env's summary."""
        if name == "episode_summary":
            return self.episode_summaries()
        return super().call(name, *args, **kwargs)

    @property
    def episode_ends(self) -> np.ndarray:
        """Row at which each env's current episode truncates."""
        return self._istate[:, IState.end].copy()
