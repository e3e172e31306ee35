"""``PortfolioVectorEnv``: N ``trendgym/Portfolio-v0`` portfolios stepped by one numba call."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numba
import numpy as np
from gymnasium.vector import AutoresetMode

from trendgym.envs.market.accounting import ACTION_NAN
from trendgym.envs.portfolio import WEIGHT_CLIP, PortfolioEnv, summarize_episode
from trendgym.envs.vector.native import NativeVectorEnv
from trendgym.envs.vector.portfolio_nb import (
    D_TERMINATED,
    D_TRUNCATED,
    F_COST_SUM,
    F_NAV,
    F_TURNOVER_SUM,
    I_END,
    I_K,
    I_T,
    N_FSTATE,
    N_ISTATE,
    N_OUT,
    O_COST,
    O_COST_SUM,
    O_K,
    O_NAV,
    O_REWARD,
    O_T,
    O_TURNOVER,
    O_TURNOVER_SUM,
    vector_reset_nb,
    vector_step_nb,
    vector_step_serial_nb,
)

# below this many envs, waking the other cores costs more than it saves (benchmarks/vector.py)
PARALLEL_MIN_ENVS = 32
# prange hands each thread this many contiguous chunks of envs (one kernel call per chunk)
CHUNKS_PER_THREAD = 4


class PortfolioVectorEnv(NativeVectorEnv):
    """`num_envs` independent Portfolio-v0 episodes on one dataset, stepped in one numba call.

    ## Description

    The native vector version of ``PortfolioEnv``: the dataset, features and costs are built once
    (by one ``PortfolioEnv`` holding them, `template`) and shared; each sub-env has its own
    window start, NAV, weights and episode accumulators, all in arrays. A step is one parallel
    numba call over the envs (``prange``: all cores), so the environment costs a fraction of a
    microsecond per env-step. Trajectories are identical bit for bit to a ``SyncVectorEnv`` of
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

    Infos are Gymnasium vector infos (arrays with `_key` masks): `nav`, `date` (datetime64) every
    step; `turnover` and `costs` for stepped envs; on an episode's last step the single env's
    terminal summary keys (`total_return`, `sharpe`, ..., `step_turnover`, `step_costs`).

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
        self._fstate = np.zeros((n, N_FSTATE))
        self._istate = np.zeros((n, N_ISTATE), dtype=np.int64)
        self._weights = np.zeros((n, n_assets))
        self._rets = np.full((n, longest), 0.0)  # touched now, not page by page mid-episode
        self._obs = np.zeros((n, obs_dim), dtype=np.float32)
        self._final_obs = np.zeros((n, obs_dim), dtype=np.float32)
        self._step_out = np.zeros((N_OUT, n))  # one row per outcome (O_*), see portfolio_nb
        self._ends = np.zeros((2, n), dtype=bool)  # terminated, truncated (D_*)
        self._codes = np.zeros(n, dtype=np.int64)
        self._next_start = np.full(n, first, dtype=np.int64)
        self._autoreset = np.zeros(n, dtype=bool)
        self._done = np.ones(n, dtype=bool)  # no episode yet: reset() first
        self._any_done = True
        self._any_autoreset = False
        self._everyone = np.ones(n, dtype=bool)
        self._everyone.flags.writeable = False
        # all-False mask, shared; never written (a read-only array would be a second numba type
        # of the kernels' `reset_first`, compiled a second time)
        self._no_reset = np.zeros(n, dtype=bool)
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
        vector_reset_nb(
            mask,
            starts,
            self.window or 0,
            self._last,
            self._fstate,
            self._istate,
            self._weights,
            self.template._static_obs,
            obs,
        )
        self._obs = obs
        # new arrays, not writes: these masks may be the shared `_no_reset`
        self._autoreset = self._autoreset & ~mask
        self._any_autoreset = bool(self._autoreset.any())
        self._done = self._done & ~mask
        self._any_done = bool(self._done.any())
        nav = self._fstate[:, F_NAV].copy()
        infos = {
            "nav": nav,
            "_nav": mask.copy(),
            "date": self._dates64[self._istate[:, I_T]],
            "_date": mask.copy(),
        }
        return (obs.copy() if self.copy else obs), infos

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        a = actions if type(actions) is np.ndarray else np.asarray(actions)
        if a.shape != self.action_space.shape:
            raise ValueError(f"actions must have shape {self.action_space.shape}, got {a.shape}")
        if a.dtype != np.float32 and a.dtype != np.float64:
            if a.dtype.kind not in "fiu":
                raise ValueError(f"actions must be numeric, got dtype {a.dtype}")
            a = a.astype(np.float64)
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
        kernel = vector_step_nb if use_prange else vector_step_serial_nb
        start = time.perf_counter()
        n_ended = kernel(
            a,
            reset_first,
            same_step,
            self._next_start,
            self.window or 0,
            self._last,
            self._fstate,
            self._istate,
            self._weights,
            self._rets,
            self.template._market,
            self.template._avg_corr,
            self.template._prop_cost,
            self.max_leverage,
            self.target_vol or 0.0,
            self.template._static_obs,
            self.template._n_features,
            self.template._weight_col,
            WEIGHT_CLIP,
            self.reward_kind == "log_return",
            self.dsr_eta,
            obs,
            self._final_obs,
            self._step_out,
            self._ends,
            self._codes,
            self._n_chunks,
        )
        self._threads.record(use_prange, time.perf_counter() - start)
        if n_ended < 0:
            bad = int(np.flatnonzero(self._codes)[0])
            why = "NaN" if self._codes[bad] == ACTION_NAN else "outside [-1, 1]"
            raise ValueError(f"action of env {bad} has weights {why}: {a[bad].tolist()}")
        # every row of `obs` was written: each env was stepped or reset (stepping an ended
        # env without a reset is refused above), so a fresh `np.empty` is safe
        self._obs = obs
        out = self._step_out
        terminated = self._ends[D_TERMINATED].copy()
        truncated = self._ends[D_TRUNCATED].copy()
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
        return obs, out[O_REWARD].copy(), terminated, truncated, infos

    def _refill_starts(self, used: np.ndarray) -> None:
        if self.window is None:
            return
        for i in np.flatnonzero(used):
            self._next_start[i] = self._draw_start(i)

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
        everyone = self._everyone  # read-only all-True mask, shared across steps
        infos: dict[str, Any] = {
            "nav": self._fstate[:, F_NAV].copy(),
            "_nav": everyone,
            "date": self._dates64[self._istate[:, I_T]],
            "_date": everyone,
        }
        # a reset env's info is the reset info (nav, date): no step keys for it
        has_step_keys = None
        if any_reset_first:
            has_step_keys = ~reset_first
        if same_step and any_ended:
            has_step_keys = ~ended
        if has_step_keys is None:
            infos["turnover"] = out[O_TURNOVER].copy()
            infos["_turnover"] = everyone
            infos["costs"] = out[O_COST].copy()
            infos["_costs"] = everyone
        elif has_step_keys.any():
            infos["turnover"] = np.where(has_step_keys, out[O_TURNOVER], 0.0)
            infos["_turnover"] = has_step_keys
            infos["costs"] = np.where(has_step_keys, out[O_COST], 0.0)
            infos["_costs"] = has_step_keys.copy()
        if not any_ended:
            return infos
        n = self.num_envs
        idx = np.flatnonzero(ended)
        if same_step:
            final = {
                "nav": np.where(ended, out[O_NAV], 0.0),
                "_nav": ended.copy(),
                "date": self._dates64[out[O_T].astype(np.int64)],
                "_date": ended.copy(),
                "turnover": np.where(ended, out[O_TURNOVER], 0.0),
                "_turnover": ended.copy(),
                "costs": np.where(ended, out[O_COST], 0.0),
                "_costs": ended.copy(),
            }
            self._add_summaries(final, idx, ended)
            final_obs = np.full(n, None, dtype=object)
            for i in idx:
                final_obs[i] = self._final_obs[i].copy()
            infos["final_obs"] = final_obs
            infos["_final_obs"] = ended.copy()
            infos["final_info"] = final
            infos["_final_info"] = ended.copy()
        else:
            self._add_summaries(infos, idx, ended)
        return infos

    def _add_summaries(self, infos: dict[str, Any], idx: np.ndarray, ended: np.ndarray) -> None:
        """The single env's terminal keys for the envs in `idx` (step keys move to step_*)."""
        out = self._step_out
        n = self.num_envs
        infos["step_turnover"] = np.where(ended, out[O_TURNOVER], 0.0)
        infos["_step_turnover"] = ended.copy()
        infos["step_costs"] = np.where(ended, out[O_COST], 0.0)
        infos["_step_costs"] = ended.copy()
        for i in idx:
            k = int(out[O_K, i])
            summary = summarize_episode(
                self._rets[i, :k], out[O_TURNOVER_SUM, i], out[O_COST_SUM, i]
            )
            for key, value in summary.items():
                if key not in infos:
                    infos[key] = np.zeros(n, dtype=type(value))
                    infos[f"_{key}"] = np.zeros(n, dtype=bool)
                infos[key][i] = value
                mask = infos[f"_{key}"]
                if not mask[i]:
                    if not mask.flags.writeable:  # the shared all-True mask is never written
                        mask = infos[f"_{key}"] = mask.copy()
                    mask[i] = True

    # ---------------------------------------------------------------- per-env access
    def per_env_attrs(self) -> dict[str, Callable[[int], Any]]:
        return {
            **super().per_env_attrs(),
            "t": lambda i: int(self._istate[i, I_T]),
            "nav": lambda i: float(self._fstate[i, F_NAV]),
            "weights": lambda i: self._weights[i].copy(),
        }

    def episode_summaries(self) -> tuple[dict[str, Any], ...]:
        """Each env's ``episode_summary`` so far (as ``PortfolioEnv.episode_summary``)."""
        return tuple(
            summarize_episode(
                self._rets[i, : self._istate[i, I_K]],
                self._fstate[i, F_TURNOVER_SUM],
                self._fstate[i, F_COST_SUM],
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
        return self._istate[:, I_END].copy()
