"""A domain's plan of one fold: the training env, the validation block, the OOS blocks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Block", "FoldPlan"]


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
