"""The picture ``trendgym calibrate`` writes: a tape against its calibrated simulation."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trendgym.envs.lob.tape_facts import lag_autocorr

MAX_LAG = 10  # lags (buckets) of the mid-change autocorrelation panel


def plot_calibration(real: dict, sim: dict, path: str | Path, title: str = "") -> None:
    """Four panels from two ``tape_series``: depth profile, spread distribution, 1-minute
    return distribution and the autocorrelation of bucket mid changes, tape against
    calibrated simulation, saved as a PNG (matplotlib's Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 2, figsize=(10, 7))
    series = (("tape", real, "tab:blue"), ("calibrated", sim, "tab:orange"))
    levels = np.arange(1, real["depth"].size + 1)
    for k, (label, s, color) in enumerate(series):
        ax[0, 0].bar(levels + (k - 0.5) * 0.4, s["depth"], 0.4, label=label, color=color)
    ax[0, 0].set(title="depth profile", xlabel="level", ylabel="mean lots per side")

    top = int(max(np.percentile(real["spread"], 99), np.percentile(sim["spread"], 99)))
    bins = np.arange(0.5, max(top, 1) + 1.5)
    for label, s, color in series:
        ax[0, 1].hist(s["spread"], bins, density=True, alpha=0.5, label=label, color=color)
    ax[0, 1].set(title="spread", xlabel="ticks", ylabel="share of samples")

    both = np.concatenate([real["r60"], sim["r60"]]) * 1e4
    if both.size:
        edges = np.linspace(both.min(), both.max(), 30) if np.ptp(both) > 0 else 10
        for label, s, color in series:
            ax[1, 0].hist(s["r60"] * 1e4, edges, density=True, alpha=0.5, label=label, color=color)
    ax[1, 0].set(title="1-minute mid returns", xlabel="bps", ylabel="density")

    lags = np.arange(1, MAX_LAG + 1)
    for label, s, color in series:
        acf = [lag_autocorr(s["dmid"], s["pair"], lag) for lag in lags]
        ax[1, 1].plot(lags, acf, "o-", label=label, color=color)
    ax[1, 1].axhline(0.0, color="grey", lw=0.8)
    ax[1, 1].set(title="autocorrelation of 10 s mid changes", xlabel="lag (buckets)")
    for a in ax.ravel():
        a.legend(fontsize=8)
    fig.suptitle(f"{title}: tape vs calibrated simulation" if title else "calibration")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
