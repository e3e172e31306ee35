"""What a walk-forward evaluation trains, how it splits the data, and its cost scenarios."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

__all__ = ["WalkForwardConfig", "cost_label", "run_key", "with_env_kwargs"]


def cost_label(multiplier: float) -> str:
    """Scenario name of the OOS block at a cost multiplier: ``oos@1x``, ``oos@2x``, ``oos@1.5x``."""
    return f"oos@{multiplier:g}x"


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
    test_env_kwargs : execution domain: the ``gymnasium.make`` kwargs of the held-out
        episodes (validation and OOS blocks, and the baselines scored on them), replacing
        `env_kwargs` there (not merged into them); None: `env_kwargs`. Train on a calibrated
        flow, test on a replayed tape: its blocks become disjoint windows of the tape.
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
    placebo_markets : placebo searches (distinct random-walk markets for the portfolio).
    universe : "pit" or "futures" when the user vouches for the data's universe (it then
        need not show delistings); None: synthetic presets know theirs, other data must show.
    blind : train and score on noise observations (the execution placebo's search).
    n_envs : envs each trial trains on; above 1 a native batched env steps them when the env
        has one (else they step one after the other in the trial's process).
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
    episodes: int = 200
    placebo_markets: int = 2
    universe: Literal["pit", "futures"] | None = None
    blind: bool = False
    n_envs: int = 1
    test_env_kwargs: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.env_id, str) or not self.env_id:
            raise ValueError(f"env_id must be a non-empty string, got {self.env_id!r}")
        object.__setattr__(self, "env_id", self.env_id.removeprefix("trendgym:"))
        object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "grid", tuple(dict(g) for g in self.grid))
        object.__setattr__(self, "cost_multipliers", tuple(float(m) for m in self.cost_multipliers))
        object.__setattr__(self, "env_kwargs", dict(self.env_kwargs))
        object.__setattr__(self, "model_kwargs", dict(self.model_kwargs))
        if self.test_env_kwargs is not None:
            _check_json(self.test_env_kwargs, "test_env_kwargs")
            object.__setattr__(self, "test_env_kwargs", dict(self.test_env_kwargs))
        if self.universe not in (None, "pit", "futures"):
            raise ValueError(f"universe must be 'pit', 'futures' or None, got {self.universe!r}")
        for name in (
            "n_folds",
            "timesteps",
            "train_window",
            "episodes",
            "placebo_markets",
            "n_envs",
        ):
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
            "placebo_markets": self.placebo_markets,
            "universe": self.universe,
            "blind": self.blind,
            "n_envs": self.n_envs,
            "test_env_kwargs": None if self.test_env_kwargs is None else dict(self.test_env_kwargs),
        }

    @property
    def held_out_kwargs(self) -> dict[str, Any]:
        """The env kwargs of the held-out episodes: `test_env_kwargs`, else `env_kwargs`."""
        kwargs = self.env_kwargs if self.test_env_kwargs is None else self.test_env_kwargs
        return dict(kwargs)


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


def with_env_kwargs(
    config: WalkForwardConfig, env_kwargs: Mapping[str, Any], experiment: str, blind: bool = False
) -> WalkForwardConfig:
    """The same search on other data or blind (a placebo), under its own ledger experiment."""
    return replace(config, env_kwargs=dict(env_kwargs), experiment=experiment, blind=blind)


def run_key(config: WalkForwardConfig) -> str:
    """The key of a search's trials in the ledger: a hash of the whole config and the code
    version, so a resumed search only reuses trials that the same search ran."""
    from trendgym.evaluate.ledger import code_version

    text = json.dumps({"config": config.to_json(), "code": code_version()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
