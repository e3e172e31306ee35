"""Disjoint windows of a replayed tape for the held-out blocks of the execution domain.

A tape's usable span (its two-sided book, cut to any ``replay_window`` the user gave) is cut
in time: the first ``validation_fraction`` of it is the validation window (shared by every
fold, each fold with its own episode seeds), the rest ``n_folds`` equal OOS windows in time
order. An episode (warm-up and horizon) lies wholly inside its window, so validation and OOS
episodes, and the episodes of two folds, never share a moment of the tape.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TapeWindows", "tape_windows"]


@dataclass(frozen=True)
class TapeWindows:
    """The validation window and one OOS window per fold, (start, end) in s after midnight."""

    validation: tuple[float, float]
    folds: tuple[tuple[float, float], ...]


def tape_windows(
    usable: tuple[float, float],
    episode_seconds: float,
    n_folds: int,
    validation_fraction: float,
    what: str,
) -> TapeWindows:
    """Cut `usable` into the validation window and `n_folds` OOS windows; ValueError naming
    `what` (the kwargs and tape) when a window is too short for one episode."""
    lo, hi = float(usable[0]), float(usable[1])
    cut = lo + validation_fraction * (hi - lo)
    # edges in whole milliseconds (readable in the report); the env clips a window to the
    # tape, so an edge rounded past the tape's ends changes nothing
    lo, hi, cut = round(lo, 3), round(hi, 3), round(cut, 3)
    edges = [round(cut + (hi - cut) * k / n_folds, 3) for k in range(n_folds)] + [hi]
    folds = tuple((edges[k], edges[k + 1]) for k in range(n_folds))
    validation = (lo, cut)
    shortest = min(b - a for a, b in (validation, *folds))
    if shortest < episode_seconds:
        raise ValueError(
            f"{what}: its {hi - lo:.6g} s of two-sided book [{lo:.6g}, {hi:.6g}] split in time "
            f"give the validation block {cut - lo:.6g} s and each of the {n_folds} OOS blocks "
            f"{(hi - cut) / n_folds:.6g} s, but an episode needs {episode_seconds:.6g} s "
            f"(warm-up and horizon): use a longer tape, fewer folds or shorter episodes"
        )
    return TapeWindows(validation, folds)
