"""Issue 6's learning curves and held-out figures: PPO on Execution-v0 and Portfolio-v0.

    python benchmarks/learning_curves.py                      # trains what is missing (~6 min)
    python benchmarks/learning_curves.py --out runs/curves --figure benchmarks/figures/learning_curves.png

Trains (or reuses, when ``<out>/<name>/model.zip`` exists) the runs of ``train/ppo_execution.py``
and ``train/ppo_portfolio.py`` with their default budgets, prints training seconds, held-out
figures (shortfall vs TWAP on seeds 10_000..10_199; Sharpe vs StaticTSMOM on the last 25% of
dates) and the learning curves (mean training-episode return in 10 blocks of episodes), and
saves the curves as a PNG.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from trendgym.train import ppo_execution, ppo_portfolio  # noqa: E402
from trendgym.train.monitor import episode_returns, learning_curve  # noqa: E402

EXPERIMENTS = {
    "execution_urgent": (ppo_execution, {"env_kwargs": {"urgency": 0.8}}),
    "execution_sampled": (ppo_execution, {}),
    "portfolio_rows": (ppo_portfolio, {"extractor": "none"}),
    "portfolio_attention": (ppo_portfolio, {"extractor": "attention"}),
}


def train_or_reuse(root: Path, name: str) -> tuple[Path, float | None]:
    module, kwargs = EXPERIMENTS[name]
    run_dir = root / name
    if (run_dir / "model.zip").is_file():
        return run_dir, None
    started = time.perf_counter()
    module.main(module.Args(**kwargs, out=str(run_dir), progress_bar=False))
    return run_dir, time.perf_counter() - started


def training_seconds(run_dir: Path) -> float:
    sessions = (run_dir / "sessions.jsonl").read_text().splitlines()
    return sum(json.loads(line)["wall_seconds"] for line in sessions)


def _smoothed(run_dir: Path, width: int = 20) -> tuple[np.ndarray, np.ndarray]:
    returns = episode_returns(run_dir)
    steps = np.concatenate(
        [
            np.loadtxt(f, delimiter=",", skiprows=2, usecols=1, ndmin=1)
            for f in sorted((run_dir / "monitor").glob("*.monitor.csv"))
        ]
    ).cumsum()
    kernel = np.ones(width) / width
    return steps[width - 1 :], np.convolve(returns, kernel, mode="valid")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/learning_curves")
    parser.add_argument("--figure", default="benchmarks/figures/learning_curves.png")
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = Path(args.out)

    runs = {}
    for name in EXPERIMENTS:
        run_dir, _ = train_or_reuse(root, name)
        runs[name] = run_dir
        print(f"{name}: {run_dir}, learn() wall time {training_seconds(run_dir):.1f} s")

    held_out: dict[tuple[str, str], float] = {}
    print("\nExecution-v0, 200 held-out seeds, shortfall bp (mean ± s.e.; PPO - baseline paired)")
    for name in ("execution_urgent", "execution_sampled"):
        for baseline in ("TWAP", "Aggressive", "AlmgrenChriss"):
            res = ppo_execution.evaluate(runs[name], baseline=baseline)
            held_out[(name, baseline)] = res["baseline_bps"]
            print(
                f"  {name:18s} PPO {res['ppo_bps']:6.2f} ± {res['ppo_se_bps']:.2f}   "
                f"{baseline:13s} {res['baseline_bps']:6.2f} ± {res['baseline_se_bps']:.2f}   "
                f"PPO - {baseline} {res['diff_bps']:7.2f} ± {res['diff_se_bps']:.2f}"
            )
    print("\nPortfolio-v0 futures, trained on 75% of dates; in / out of sample")
    for name in ("portfolio_rows", "portfolio_attention"):
        print(f"  {name}\n" + ppo_portfolio.evaluate(runs[name]).round(3).to_string())

    print("\nLearning curves: mean training-episode return in 10 blocks of episodes")
    for name, run_dir in runs.items():
        unit = "bp (-shortfall)" if name.startswith("execution") else "log return / 252 d"
        print(f"  {name:20s} [{unit}]: " + " ".join(f"{x:.4g}" for x in learning_curve(run_dir)))

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, colour in (("execution_urgent", "C0"), ("execution_sampled", "C1")):
        steps, curve = _smoothed(runs[name])
        setting = name.split("_")[1]
        axes[0].plot(steps, curve, color=colour, label=f"PPO, {setting}")
        for baseline, style in (("TWAP", "--"), ("Aggressive", ":")):
            axes[0].axhline(
                -held_out[(name, baseline)],
                color=colour,
                ls=style,
                lw=1,
                label=f"{baseline}, {setting} (held-out mean)",
            )
    axes[0].set(title="Execution-v0: episode reward = -shortfall (bp)", xlabel="env steps")
    for name, colour in (("portfolio_rows", "C2"), ("portfolio_attention", "C3")):
        steps, curve = _smoothed(runs[name])
        axes[1].plot(steps, curve, color=colour, label=f"PPO, {name.split('_')[1]}")
    axes[1].axhline(0.0, color="grey", lw=1)
    axes[1].set(title="Portfolio-v0 futures: 252-day episode log return", xlabel="env steps")
    for ax in axes:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.figure, dpi=120)
    print(f"\nsaved {args.figure}")


if __name__ == "__main__":
    main()
