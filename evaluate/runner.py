"""Walk-forward runner: train on each fold's past only, select inside it, test on the next block.

For every fold x seed x hyper-parameter set (a *trial*) one job trains an SB3 agent on the
fold's training span minus a validation tail, scores it on that tail (the only thing model,
seed and hyper-parameter selection may look at), and evaluates it on the out-of-sample block
at every cost multiplier. Each trial is appended to the trial ledger as it finishes. Per fold
the trial with the best validation Sharpe is the agent; its OOS blocks are stitched into one
series. Every baseline runs on exactly the same OOS blocks and costs.

A *domain* turns an env id into folds, cost multipliers, baselines and per-period returns.
Portfolio-v0 walks forward over dates; Execution-v0 over held-out episode seeds. Jobs run in
local worker processes (``spawn``) or, given ``ray_address``, as Ray tasks; results are
ordered by (fold, hyper-parameters, seed) whatever the completion order, so both backends
give the same numbers.

Training imports (torch, SB3) happen inside the worker function only.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from trendgym.evaluate.ledger import DEFAULT_LEDGER_PATH, Ledger, TrialRecord
from trendgym.evaluate.splits import walk_forward_splits
from trendgym.evaluate.stats import max_drawdown, sharpe_ratio

__all__ = [
    "Block",
    "Domain",
    "FoldPlan",
    "TrialJob",
    "TrialOutcome",
    "WalkForwardConfig",
    "WalkForwardResult",
    "cost_label",
    "domain_for",
    "register_domain",
    "run_trial",
    "run_walk_forward",
]

Backend = Literal["local", "ray"]


def cost_label(multiplier: float) -> str:
    """Scenario name of the OOS block at a cost multiplier: ``oos@1x``, ``oos@2x``, ``oos@1.5x``."""
    return f"oos@{multiplier:g}x"


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class WalkForwardConfig:
    """What a walk-forward evaluation trains and how it splits the data.

    Parameters
    ----------
    env_id : a registered env id with a domain (``trendgym/Portfolio-v0``, ...).
    algo : SB3 algorithm name ("ppo", "sac", "a2c").
    n_folds : number of OOS blocks (folds).
    seeds : training seeds tried in every fold (each one is a trial, paid for in the ledger).
    timesteps : training steps per trial.
    env_kwargs : ``gymnasium.make`` kwargs of the evaluation universe (JSON-serialisable).
    model_kwargs : SB3 keywords for every trial; ``grid`` entries are merged over them.
    grid : hyper-parameter sets tried in every fold (``({},)``: the defaults only).
    extractor : features extractor for ``TrainConfig`` ("default": the env id's default).
    validation_fraction : share of each training span held out (its tail) for selection.
    mode, purge, embargo : walk-forward splitting (see ``walk_forward_splits``).
    train_window : episode length of training episodes (random windows of the training span).
    cost_multipliers : OOS cost scenarios; must include 1 and 2 (the verdict uses 2x).
    baseline : the baseline the agent must beat, or "best" (the best one at 2x costs).
    experiment : ledger tag; the DSR counts every distinct trial of this experiment.
    episodes : execution domain: held-out episodes per OOS block.
    """

    env_id: str
    algo: str = "ppo"
    n_folds: int = 2
    seeds: tuple[int, ...] = (0, 1)
    timesteps: int = 2048
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    grid: tuple[Mapping[str, Any], ...] = ({},)
    extractor: str | None = "default"
    validation_fraction: float = 0.2
    mode: Literal["expanding", "rolling"] = "expanding"
    purge: int = 0
    embargo: int = 0
    train_window: int = 252
    cost_multipliers: tuple[float, ...] = (1.0, 2.0)
    baseline: str = "best"
    experiment: str = "walk-forward"
    episodes: int = 20

    def __post_init__(self) -> None:
        if not isinstance(self.env_id, str) or not self.env_id:
            raise ValueError(f"env_id must be a non-empty string, got {self.env_id!r}")
        object.__setattr__(self, "env_id", self.env_id.removeprefix("trendgym:"))
        object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "grid", tuple(dict(g) for g in self.grid))
        object.__setattr__(self, "cost_multipliers", tuple(float(m) for m in self.cost_multipliers))
        object.__setattr__(self, "env_kwargs", dict(self.env_kwargs))
        object.__setattr__(self, "model_kwargs", dict(self.model_kwargs))
        for name in ("n_folds", "timesteps", "train_window", "episodes"):
            _positive_int(getattr(self, name), name)
        for name in ("purge", "embargo"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if not self.seeds:
            raise ValueError("seeds must name at least one training seed")
        for s in self.seeds:
            if isinstance(s, bool) or not isinstance(s, int | np.integer) or s < 0:
                raise ValueError(f"seeds must be non-negative ints, got {s!r}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {self.seeds}")
        if not self.grid:
            raise ValueError("grid must hold at least one hyper-parameter set ({} = defaults)")
        if not 0.0 < float(self.validation_fraction) < 1.0:
            raise ValueError(
                f"validation_fraction must lie in (0, 1), got {self.validation_fraction!r}"
            )
        if self.mode not in ("expanding", "rolling"):
            raise ValueError(f"mode must be 'expanding' or 'rolling', got {self.mode!r}")
        if 1.0 not in self.cost_multipliers or 2.0 not in self.cost_multipliers:
            raise ValueError(
                f"cost_multipliers must include 1 and 2 (the verdict judges 2x), "
                f"got {self.cost_multipliers}"
            )
        if any(not (m > 0 and math.isfinite(m)) for m in self.cost_multipliers):
            raise ValueError(f"cost_multipliers must be positive, got {self.cost_multipliers}")
        for name in ("env_kwargs", "model_kwargs"):
            _check_json(getattr(self, name), name)
        for k, g in enumerate(self.grid):
            _check_json(g, f"grid[{k}]")

    def to_json(self) -> dict[str, Any]:
        return {
            "env_id": self.env_id,
            "algo": self.algo,
            "n_folds": self.n_folds,
            "seeds": list(self.seeds),
            "timesteps": self.timesteps,
            "env_kwargs": dict(self.env_kwargs),
            "model_kwargs": dict(self.model_kwargs),
            "grid": [dict(g) for g in self.grid],
            "extractor": self.extractor,
            "validation_fraction": self.validation_fraction,
            "mode": self.mode,
            "purge": self.purge,
            "embargo": self.embargo,
            "train_window": self.train_window,
            "cost_multipliers": list(self.cost_multipliers),
            "baseline": self.baseline,
            "experiment": self.experiment,
            "episodes": self.episodes,
        }


def _positive_int(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_json(value: Mapping[str, Any], name: str) -> None:
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a dict, got {type(value).__name__}")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{name} must be JSON-serialisable (workers rebuild the env): {err}"
        ) from None


# --------------------------------------------------------------------------- plans and jobs


@dataclass(frozen=True)
class Block:
    """Where a policy is scored: env kwargs plus the episode seeds to run (one per period
    for execution; a single deterministic walk for the portfolio)."""

    env_kwargs: Mapping[str, Any]
    episode_seeds: tuple[int, ...] = (0,)


@dataclass(frozen=True)
class FoldPlan:
    """One fold: training env kwargs, validation block, OOS blocks per cost scenario.

    `period_index` labels the OOS periods (ISO dates of the close that realises each return,
    or episode numbers); `describe` is what the report shows about the fold's spans.
    """

    fold: int
    train_kwargs: Mapping[str, Any]
    validation: Block
    tests: Mapping[str, Block]
    period_index: tuple[Any, ...]
    describe: Mapping[str, Any]


@dataclass(frozen=True)
class TrialJob:
    """Everything a worker needs to train and score one trial; picklable, no live objects."""

    env_id: str
    algo: str
    fold: int
    seed: int
    hp_index: int
    hparams: Mapping[str, Any]
    model_kwargs: Mapping[str, Any]
    extractor: str | None
    timesteps: int
    train_kwargs: Mapping[str, Any]
    blocks: Mapping[str, Block]
    run_dir: str | None = None  # keep the trained model here; None: a temporary directory


@dataclass(frozen=True)
class TrialOutcome:
    """A trained trial's per-period returns in every block (validation, oos@1x, oos@2x, ...)."""

    job: TrialJob
    returns: Mapping[str, np.ndarray]
    train_seconds: float

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.job.fold, self.job.hp_index, self.job.seed)


# --------------------------------------------------------------------------- domains


class Domain(Protocol):
    """How walk-forward evaluation meets one kind of env."""

    name: str
    periods_per_year: float | None  # for annualised Sharpe; None: per-episode statistics

    def plan(self, config: WalkForwardConfig) -> list[FoldPlan]: ...

    def episode_returns(self, env: Any, policy: Any, seed: int) -> np.ndarray: ...

    def baselines(self, env: Any) -> dict[str, Any]: ...

    def placebo_env_kwargs(self, config: WalkForwardConfig) -> dict[str, Any]: ...


_DOMAINS: dict[str, Callable[[], Domain]] = {}


def register_domain(env_id: str, factory: Callable[[], Domain]) -> None:
    """Plug an env id into the runner (``factory()`` builds its :class:`Domain`)."""
    _DOMAINS[env_id] = factory


def domain_for(env_id: str) -> Domain:
    env_id = env_id.removeprefix("trendgym:")
    if env_id not in _DOMAINS:
        raise ValueError(
            f"no walk-forward domain for env id {env_id!r}; registered: {sorted(_DOMAINS)}"
        )
    return _DOMAINS[env_id]()


def make_env(env_id: str, env_kwargs: Mapping[str, Any]) -> Any:
    import gymnasium as gym

    import trendgym  # noqa: F401  (registers the ids in a fresh worker)

    return gym.make(env_id, **dict(env_kwargs))


def block_returns(domain: Domain, env_id: str, block: Block, policy: Any) -> np.ndarray:
    """Per-period returns of `policy` over a block (its episodes, in seed order)."""
    env = make_env(env_id, block.env_kwargs)
    try:
        return episodes_returns(domain, env, policy, block.episode_seeds)
    finally:
        env.close()


def episodes_returns(domain: Domain, env: Any, policy: Any, seeds: Sequence[int]) -> np.ndarray:
    return np.concatenate([domain.episode_returns(env, policy, int(s)) for s in seeds])


class PortfolioDomain:
    """Portfolio-v0: folds are blocks of decision dates after the features' warm-up.

    The training env is restricted with ``start``/``end`` so its last return is realised at
    the close where the validation block starts; validation and OOS blocks are one walk
    each (``window=None``). Costs scale the proportional costs and the impact coefficient.
    """

    name = "portfolio"

    def __init__(self) -> None:
        from trendgym.envs.market.calendar import BUSINESS_DAYS_PER_YEAR as PERIODS_PER_YEAR

        self.periods_per_year = float(PERIODS_PER_YEAR)

    def _universe(self, env_kwargs: Mapping[str, Any]) -> Any:
        kwargs = {k: v for k, v in env_kwargs.items() if k != "window"}
        return make_env("trendgym/Portfolio-v0", kwargs).unwrapped

    def cost_kwargs(self, env: Any, env_kwargs: Mapping[str, Any], multiplier: float) -> dict:
        kwargs = dict(env_kwargs)
        kwargs["costs_bps"] = {
            str(a): float(c) * multiplier for a, c in zip(env.assets, env.costs_bps, strict=True)
        }
        kwargs["impact_coef"] = float(env_kwargs.get("impact_coef", 1.0)) * multiplier
        return kwargs

    def plan(self, config: WalkForwardConfig) -> list[FoldPlan]:
        env = self._universe(config.env_kwargs)
        base = {k: v for k, v in config.env_kwargs.items() if k not in ("window", "start", "end")}
        first, last = env._span
        dates = pd.DatetimeIndex(env.prices.index)
        n = last - first  # decision rows first .. last-1; each earns its next close's return
        gap = config.purge + config.embargo
        folds = walk_forward_splits(
            n,
            n_splits=config.n_folds,
            train_size=max(1, n // (config.n_folds + 1)),
            mode=config.mode,
            purge=config.purge,
            embargo=config.embargo,
        )

        def iso(row: int) -> str:
            return dates[first + row].isoformat()

        def span(a: int, b: int) -> dict[str, str]:
            # decisions at rows a..b-1 (relative to `first`); the env's end is the close of b
            return {"start": iso(a), "end": iso(b)}

        plans = []
        for f in folds:
            a, b = f.train_start, f.train_stop
            v = a + int(round((1.0 - config.validation_fraction) * (b - a)))
            sub_stop = v - gap
            if sub_stop - a < 2 or b - v < 2:
                raise ValueError(
                    f"fold {f.fold}: training span of {b - a} days is too short to hold out a "
                    f"validation tail of {config.validation_fraction:.0%} with a gap of {gap}"
                )
            steps = sub_stop - a
            train_kwargs = {**base, **span(a, sub_stop), "window": min(config.train_window, steps)}
            tests = {
                cost_label(m): Block(
                    self.cost_kwargs(env, {**base, **span(f.test_start, f.test_stop)}, m)
                )
                for m in config.cost_multipliers
            }
            plans.append(
                FoldPlan(
                    fold=f.fold,
                    train_kwargs=train_kwargs,
                    validation=Block({**base, **span(v, b)}),
                    tests=tests,
                    period_index=tuple(iso(r + 1) for r in range(f.test_start, f.test_stop)),
                    describe={
                        "train": f"{iso(a)[:10]} .. {iso(sub_stop)[:10]}",
                        "validation": f"{iso(v)[:10]} .. {iso(b)[:10]}",
                        "test": f"{iso(f.test_start)[:10]} .. {iso(f.test_stop)[:10]}",
                        "train_days": steps,
                        "validation_days": b - v,
                        "test_days": f.test_stop - f.test_start,
                    },
                )
            )
        return plans

    def episode_returns(self, env: Any, policy: Any, seed: int) -> np.ndarray:
        return portfolio_episode_returns(env, policy, seed)

    def baselines(self, env: Any) -> dict[str, Any]:
        from trendgym.agents.portfolio import (
            CSMOM,
            EqualWeight,
            RiskParity,
            RiskParityTrend,
            StaticTSMOM,
        )

        return {
            "StaticTSMOM": StaticTSMOM(env),
            "CSMOM": CSMOM(env),
            "EqualWeight": EqualWeight(env),
            "RiskParity": RiskParity(env),
            "RiskParityTrend": RiskParityTrend(env),
        }

    def placebo_env_kwargs(self, config: WalkForwardConfig) -> dict[str, Any]:
        """A driftless random-walk market of the same shape and length with the same costs."""
        env = self._universe(config.env_kwargs)
        n_days, n_assets = env.prices.shape
        from trendgym.envs.market.generator import PERIODS_PER_YEAR

        keep = {
            k: v
            for k, v in config.env_kwargs.items()
            if k
            not in (
                "prices",
                "preset",
                "n_assets",
                "n_years",
                "costs_bps",
                "delisting_returns",
                "signals",
                "start",
                "end",
                "window",
            )
        }
        names = [f"RW{i + 1:02d}" for i in range(n_assets)]
        return {
            **keep,
            "preset": "random_walk",
            "n_years": n_days / PERIODS_PER_YEAR,
            "n_assets": n_assets,
            "costs_bps": {a: float(c) for a, c in zip(names, env.costs_bps, strict=True)},
        }


def portfolio_episode_returns(env: Any, policy: Any, seed: int | None = 0) -> np.ndarray:
    """Per-step net returns of one episode, from the NAV in each step's info.

    A wiped-out NAV ends the episode with a -100% step; the rest of the block earns 0 then.
    """
    obs, info = env.reset(seed=seed)
    nav = float(info["nav"])
    state, start = None, np.ones((1,), dtype=bool)
    rets = []
    done = False
    while not done:
        action, state = policy.predict(obs, state=state, episode_start=start, deterministic=True)
        start = np.zeros((1,), dtype=bool)
        obs, _reward, terminated, truncated, info = env.step(action)
        new_nav = float(info["nav"])
        rets.append(new_nav / nav - 1.0 if nav > 0 else 0.0)
        nav = new_nav
        done = terminated or truncated
    unwrapped = env.unwrapped
    remaining = unwrapped._end - unwrapped._t if terminated else 0
    return np.concatenate([np.asarray(rets, dtype=np.float64), np.zeros(max(remaining, 0))])


register_domain("trendgym/Portfolio-v0", PortfolioDomain)


class ExecutionDomain:
    """Execution-v0: folds are disjoint blocks of held-out episode seeds.

    Training draws its episodes from the env's own generator (seeded by the trial seed);
    validation and OOS episodes use ``reset(seed=...)`` with seeds from ranges that training
    never passes. One period = one episode, its "return" = -shortfall_bps / 1e4 (so higher is
    better and the Sharpe is mean over std of the saved cost). Costs scale the fee
    (``fee_bps``); spread and impact come from the simulated book and are never scaled.
    """

    name = "execution"
    periods_per_year = None
    VALIDATION_SEEDS = 500_000
    TEST_SEEDS = 1_000_000

    def plan(self, config: WalkForwardConfig) -> list[FoldPlan]:
        env = make_env("trendgym/Execution-v0", config.env_kwargs).unwrapped
        fee = float(config.env_kwargs.get("fee_bps", env.fee_bps))
        n = config.episodes
        n_val = max(
            2, int(round(n * config.validation_fraction / (1 - config.validation_fraction)))
        )
        plans = []
        for k in range(config.n_folds):
            test_seeds = tuple(range(self.TEST_SEEDS + k * n, self.TEST_SEEDS + (k + 1) * n))
            val_seeds = tuple(
                range(self.VALIDATION_SEEDS + k * n_val, self.VALIDATION_SEEDS + (k + 1) * n_val)
            )
            tests = {
                cost_label(m): Block({**config.env_kwargs, "fee_bps": fee * m}, test_seeds)
                for m in config.cost_multipliers
            }
            plans.append(
                FoldPlan(
                    fold=k,
                    train_kwargs=dict(config.env_kwargs),
                    validation=Block(dict(config.env_kwargs), val_seeds),
                    tests=tests,
                    period_index=test_seeds,
                    describe={
                        "train": "episodes from the env's generator (trial seed)",
                        "validation": f"seeds {val_seeds[0]}..{val_seeds[-1]}",
                        "test": f"seeds {test_seeds[0]}..{test_seeds[-1]}",
                    },
                )
            )
        return plans

    def episode_returns(self, env: Any, policy: Any, seed: int) -> np.ndarray:
        obs, info = env.reset(seed=seed)
        state, start, done = None, np.ones((1,), dtype=bool), False
        while not done:
            action, state = policy.predict(
                obs, state=state, episode_start=start, deterministic=True
            )
            start = np.zeros((1,), dtype=bool)
            obs, _reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        return np.array([-float(info["shortfall_bps"]) * 1e-4])

    def baselines(self, env: Any) -> dict[str, Any]:
        from trendgym.agents.execution import TWAP, VWAP, AlmgrenChriss

        return {"TWAP": TWAP(env), "VWAP": VWAP(env), "AlmgrenChriss": AlmgrenChriss(env)}

    def placebo_env_kwargs(self, config: WalkForwardConfig) -> dict[str, Any]:
        """The same book and costs with the informed drift switched off (nothing to time)."""
        return {**config.env_kwargs, "urgency": 0.0}


register_domain("trendgym/Execution-v0", ExecutionDomain)


# --------------------------------------------------------------------------- the worker


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def run_trial(job: TrialJob) -> TrialOutcome:
    """Train one trial on its training span and return its returns in every block.

    Runs in a worker process or Ray task; imports torch and SB3 here only.
    """
    import torch

    from trendgym.agents.loading import load
    from trendgym.agents.sb3 import _merge
    from trendgym.train.core import TrainConfig, train

    torch.set_num_threads(1)
    domain = domain_for(job.env_id)
    with tempfile.TemporaryDirectory(prefix="trendgym-trial-") as tmp:
        run_dir = job.run_dir or str(Path(tmp) / "run")
        config = TrainConfig(
            env_id=job.env_id,
            algo=job.algo,
            timesteps=int(job.timesteps),
            seed=int(job.seed),
            out=run_dir,
            extractor=job.extractor,
            env_kwargs=dict(job.train_kwargs),
            model_kwargs=_merge(dict(job.model_kwargs), dict(job.hparams)),
            checkpoint_every=0,
            progress_bar=False,
            tensorboard=False,
        )
        started = time.perf_counter()
        train(config)
        seconds = time.perf_counter() - started
        agent = load(run_dir)
        returns = {
            name: block_returns(domain, job.env_id, block, agent)
            for name, block in job.blocks.items()
        }
    return TrialOutcome(job=job, returns=returns, train_seconds=seconds)


# --------------------------------------------------------------------------- backends


def _local_backend(jobs: Sequence[TrialJob], workers: int | None) -> Iterator[TrialOutcome]:
    if workers == 0:  # in this process, one after the other (debugging, profiling)
        _worker_init()
        for job in jobs:
            yield run_trial(job)
        return
    n_workers = min(len(jobs), workers or os.cpu_count() or 1)
    methods = multiprocessing.get_all_start_methods()
    # never fork a process that may hold torch threads or an SQLite connection
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    with ProcessPoolExecutor(n_workers, mp_context=context, initializer=_worker_init) as pool:
        futures = [pool.submit(run_trial, job) for job in jobs]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _ray_backend(jobs: Sequence[TrialJob], address: str) -> Iterator[TrialOutcome]:
    try:
        import ray
    except ImportError:
        raise ImportError(
            "the Ray backend needs the optional dependency: pip install 'trendgym[ray]'"
        ) from None
    if not ray.is_initialized():
        ray.init(address=None if address == "local" else address, ignore_reinit_error=True)
    task = ray.remote(num_cpus=1)(run_trial)
    pending = [task.remote(job) for job in jobs]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            yield ray.get(ref)


# --------------------------------------------------------------------------- results


@dataclass
class WalkForwardResult:
    """Everything a verdict and a report need from one walk-forward evaluation.

    `trials` are ordered by (fold, hp_index, seed). `agent_returns[scenario]` and
    `baseline_returns[name][scenario]` are stitched OOS series on the same periods;
    `trial_returns[scenario]` has one column per trial configuration (hyper-parameters x
    seed), its folds stitched, for PBO and seed dispersion.
    """

    config: WalkForwardConfig
    domain: str
    periods_per_year: float | None
    folds: list[FoldPlan]
    trials: list[TrialOutcome]
    selected: dict[int, TrialOutcome]
    agent_returns: dict[str, pd.Series]
    baseline_returns: dict[str, dict[str, pd.Series]]
    trial_returns: dict[str, pd.DataFrame]
    ledger_path: str | None
    ledger_ids: list[int]
    wall_seconds: float

    def config_label(self, hp_index: int, seed: int) -> str:
        return f"hp{hp_index}-s{seed}" if len(self.config.grid) > 1 else f"seed {seed}"


def safe_sharpe(returns: np.ndarray) -> float:
    """Per-period Sharpe for selection: 0 for a flat series, -inf when undefined (never chosen)."""
    try:
        return sharpe_ratio(returns)
    except ValueError:
        return -math.inf


def _metrics(returns: np.ndarray, periods_per_year: float | None) -> dict[str, Any]:
    if returns.size < 2:
        return {"n": int(returns.size)}
    sr = safe_sharpe(returns)
    out: dict[str, Any] = {
        "n": int(returns.size),
        "sharpe": sr if math.isfinite(sr) else None,
        "mean": float(returns.mean()),
    }
    if periods_per_year is not None:
        out["sharpe_annualised"] = sr * math.sqrt(periods_per_year) if math.isfinite(sr) else None
        out["total_return"] = float(np.prod(1.0 + returns) - 1.0)
        out["max_drawdown"] = max_drawdown(returns) if (returns >= -1.0).all() else 1.0
    return out


def _ledger_records(
    outcomes: Sequence[TrialOutcome],
    config: WalkForwardConfig,
    plans: Mapping[int, FoldPlan],
    periods_per_year: float | None,
) -> list[TrialRecord]:
    records = []
    for o in outcomes:
        j = o.job
        oos = {label: _metrics(np.asarray(r), periods_per_year) for label, r in o.returns.items()}
        base = oos.get(cost_label(1.0), {})
        records.append(
            TrialRecord(
                env_id=config.env_id,
                agent=config.algo,
                experiment=config.experiment,
                fold=j.fold,
                seed=j.seed,
                # fold-independent, so equal params + seed + code version = the same trial config
                params={
                    "hparams": dict(j.hparams),
                    "model_kwargs": dict(j.model_kwargs),
                    "env_kwargs": dict(config.env_kwargs),
                    "timesteps": j.timesteps,
                    "extractor": j.extractor,
                    "n_folds": config.n_folds,
                    "validation_fraction": config.validation_fraction,
                },
                is_metrics={
                    "validation": oos.pop("validation", {}),
                    "train_kwargs": {k: v for k, v in j.train_kwargs.items() if k != "costs_bps"},
                    "train_seconds": round(o.train_seconds, 3),
                    "describe": dict(plans[j.fold].describe),
                },
                oos_metrics={"sharpe": base.get("sharpe"), **{k: v for k, v in oos.items()}},
                oos_returns=np.asarray(o.returns[cost_label(1.0)]),
            )
        )
    return records


def run_walk_forward(
    config: WalkForwardConfig,
    *,
    ledger: Ledger | str | os.PathLike[str] | None = DEFAULT_LEDGER_PATH,
    workers: int | None = None,
    ray_address: str | None = None,
    run_baselines: bool = True,
    progress: bool = True,
    model_dir: str | os.PathLike[str] | None = None,
) -> WalkForwardResult:
    """Run every trial of `config`, append each to the ledger, stitch the OOS results.

    Parameters
    ----------
    ledger : a Ledger, a path, or None (no ledger: the DSR then cannot be computed).
    workers : local worker processes (default: all cores, at most one per job); 0 runs the
        trials in this process. Worker processes are started with forkserver/spawn, so a
        script calling this needs the ``if __name__ == "__main__":`` guard.
    ray_address : run the jobs as Ray tasks instead ("local" starts ``ray.init()`` here;
        anything else is passed to ``ray.init(address=...)``).
    run_baselines : also score the domain's baselines on the same OOS blocks.
    model_dir : keep each trial's trained run directory under it (default: discarded).
    """
    started = time.perf_counter()
    domain = domain_for(config.env_id)
    plans = domain.plan(config)
    by_fold = {p.fold: p for p in plans}
    if isinstance(ledger, str | os.PathLike):
        ledger = Ledger(ledger)
    jobs = []
    for plan in plans:
        for h, hparams in enumerate(config.grid):
            for seed in config.seeds:
                run_dir = None
                if model_dir is not None:
                    run_dir = str(Path(model_dir) / f"fold{plan.fold}-hp{h}-s{seed}")
                jobs.append(
                    TrialJob(
                        env_id=config.env_id,
                        algo=config.algo,
                        fold=plan.fold,
                        seed=int(seed),
                        hp_index=h,
                        hparams=dict(hparams),
                        model_kwargs=dict(config.model_kwargs),
                        extractor=config.extractor,
                        timesteps=config.timesteps,
                        train_kwargs=dict(plan.train_kwargs),
                        blocks={"validation": plan.validation, **plan.tests},
                        run_dir=run_dir,
                    )
                )
    stream = _ray_backend(jobs, ray_address) if ray_address else _local_backend(jobs, workers)
    outcomes: list[TrialOutcome] = []
    ids: list[int] = []
    bar = tqdm(
        total=len(jobs), unit="trial", desc=f"walk-forward {config.env_id}", disable=not progress
    )
    try:
        for outcome in stream:
            outcomes.append(outcome)
            if ledger is not None:  # as each trial ends: a crash later still leaves it paid for
                ids += ledger.append_many(
                    _ledger_records([outcome], config, by_fold, domain.periods_per_year)
                )
            bar.update(1)
    finally:
        bar.close()
    outcomes.sort(key=lambda o: o.key)

    selected = {}
    for plan in plans:
        candidates = [o for o in outcomes if o.job.fold == plan.fold]
        # best validation Sharpe; ties go to the first (hp_index, seed): no OOS information used
        selected[plan.fold] = max(
            candidates,
            key=lambda o: (safe_sharpe(np.asarray(o.returns["validation"])), -o.key[1], -o.key[2]),
        )

    scenarios = [cost_label(m) for m in config.cost_multipliers]
    index = pd.Index([i for p in plans for i in p.period_index])
    if domain.periods_per_year is not None:
        index = pd.DatetimeIndex(index)
    agent_returns = {
        s: pd.Series(
            np.concatenate([selected[p.fold].returns[s] for p in plans]), index=index, name="agent"
        )
        for s in scenarios
    }
    trial_returns = {}
    for s in scenarios:
        cols = {}
        for h in range(len(config.grid)):
            for seed in config.seeds:
                parts = [
                    o.returns[s]
                    for p in plans
                    for o in outcomes
                    if o.job.fold == p.fold and o.job.hp_index == h and o.job.seed == seed
                ]
                label = f"hp{h}-s{seed}" if len(config.grid) > 1 else f"seed {seed}"
                cols[label] = np.concatenate(parts)
        trial_returns[s] = pd.DataFrame(cols, index=index)

    baseline_returns: dict[str, dict[str, pd.Series]] = {}
    if run_baselines:
        pieces: dict[str, dict[str, list[np.ndarray]]] = {}
        for s in scenarios:
            for p in plans:
                block = p.tests[s]
                env = make_env(config.env_id, block.env_kwargs)
                try:
                    for name, policy in domain.baselines(env).items():
                        r = episodes_returns(domain, env, policy, block.episode_seeds)
                        pieces.setdefault(name, {}).setdefault(s, []).append(r)
                finally:
                    env.close()
        baseline_returns = {
            name: {
                s: pd.Series(np.concatenate(parts), index=index, name=name)
                for s, parts in per.items()
            }
            for name, per in pieces.items()
        }

    return WalkForwardResult(
        config=config,
        domain=domain.name,
        periods_per_year=domain.periods_per_year,
        folds=plans,
        trials=outcomes,
        selected=selected,
        agent_returns=agent_returns,
        baseline_returns=baseline_returns,
        trial_returns=trial_returns,
        ledger_path=None if ledger is None else str(ledger.path),
        ledger_ids=ids,
        wall_seconds=time.perf_counter() - started,
    )


def with_env_kwargs(
    config: WalkForwardConfig, env_kwargs: Mapping[str, Any], experiment: str
) -> WalkForwardConfig:
    """The same search on other data (the placebo), under its own ledger experiment."""
    return replace(config, env_kwargs=dict(env_kwargs), experiment=experiment)
