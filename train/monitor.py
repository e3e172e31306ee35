"""Learning curves from a run directory's ``monitor/`` CSVs (one per training session)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def episode_returns(run_dir: str | Path) -> np.ndarray:
    """Every finished training episode's return (raw env rewards), in training order."""
    files = sorted((Path(run_dir) / "monitor").glob("*.monitor.csv"))
    if not files:
        raise ValueError(f"{run_dir} has no monitor/*.monitor.csv (not a training run?)")
    frames = [pd.read_csv(f, skiprows=1) for f in files]  # line 1 is a JSON header
    return np.concatenate([f["r"].to_numpy(dtype=np.float64) for f in frames])


def learning_curve(run_dir: str | Path, n_points: int = 10) -> np.ndarray:
    """Mean episode return in ``n_points`` consecutive blocks of training episodes."""
    returns = episode_returns(run_dir)
    if not isinstance(n_points, int) or n_points < 1:
        raise ValueError(f"n_points must be a positive int, got {n_points!r}")
    return np.array([b.mean() for b in np.array_split(returns, min(n_points, returns.size))])
