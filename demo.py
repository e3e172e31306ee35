"""`make demo`: the whole road in a few minutes — the order book's stylized facts, the
execution baselines, a small PPO agent trained on Execution-v0 and compared with them on
held-out seeds, the portfolio baselines, and a walk-forward evaluation of a PPO portfolio
agent that ends in a report folder with plots and a verdict.

    python -m trendgym.demo [--out report] [--timesteps 30000] [--episodes 100]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class DemoArgs:
    out: str = "report"
    timesteps: int = 30_000  # PPO budget on Execution-v0
    episodes: int = 100  # held-out evaluation episodes per policy
    seed: int = 0


def _section(title: str) -> None:
    print(f"\n{'=' * 78}\n{title}\n{'=' * 78}", flush=True)


def order_book_facts() -> str:
    from trendgym.envs.lob.facts import stylized_facts

    _section("1. The order book: stylized facts of the simulated flow (2 simulated hours each)")
    presets = ("calm", "volatile", "trending", "crypto")
    rows = {p: stylized_facts(p, seed=0, seconds=2 * 3600) for p in presets}
    names = list(rows["calm"])
    lines = ["| fact | " + " | ".join(presets) + " |", "|---|" + "---|" * len(presets)]
    lines += [f"| {n} | " + " | ".join(f"{rows[p][n]:.3f}" for p in presets) + " |" for n in names]
    table = "\n".join(lines)
    print(table)
    return table


def execution_agent(args: DemoArgs, out: Path) -> str:
    import torch

    from trendgym.agents import load
    from trendgym.agents.execution import (
        EXECUTION_BASELINES,
        execution_baseline_table,
        run_execution_episode,
    )
    from trendgym.envs.execution import ExecutionEnv
    from trendgym.train.core import TrainConfig, train

    _section("2. Execution-v0: baselines on every flow preset")
    table = execution_baseline_table(episodes=max(20, args.episodes // 2), seed=args.seed)
    print(table.round(2).to_string(index=False))

    _section(
        f"3. Training PPO on Execution-v0 for {args.timesteps:,} steps (random presets and urgency)"
    )
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    run_dir = train(
        TrainConfig(
            env_id="trendgym/Execution-v0",
            algo="ppo",
            timesteps=args.timesteps,
            seed=args.seed,
            out=str(out / "execution-ppo"),
            checkpoint_every=0,
        )
    )
    print(f"trained in {time.perf_counter() - t0:.0f} s -> {run_dir}")

    _section(
        f"4. PPO vs the baselines on {args.episodes} held-out episodes (seeds never trained on)"
    )
    env = ExecutionEnv()
    policies = {"PPO": load(run_dir)} | {
        name: cls(env) for name, cls in EXECUTION_BASELINES.items()
    }
    seeds = range(1_000_000 + args.seed, 1_000_000 + args.seed + args.episodes)
    lines = [
        "| policy | shortfall bps (mean ± s.e.) | fill rate | vs VWAP bps |",
        "|---|---|---|---|",
    ]
    for name, policy in policies.items():
        infos = [run_execution_episode(env, policy, s) for s in seeds]
        sf = np.array([i["shortfall_bps"] for i in infos])
        lines.append(
            f"| {name} | {sf.mean():.2f} ± {sf.std(ddof=1) / np.sqrt(sf.size):.2f} | "
            f"{np.mean([i['fill_rate'] for i in infos]):.2f} | "
            f"{np.mean([i['vwap_slippage_bps'] for i in infos]):.2f} |"
        )
    comparison = "\n".join(lines)
    print(comparison)
    return (
        _markdown(table.round(2))
        + "\n\n"
        + comparison
        + "\n\n"
        + under_compliance(policies["PPO"], seeds)
    )


def under_compliance(agent, seeds) -> str:
    from trendgym.agents.execution import run_execution_episode
    from trendgym.envs.compliance import ComplianceWrapper
    from trendgym.envs.execution import ExecutionEnv

    _section(
        "5. The same PPO agent under the 'strict' compliance wrapper: every order checked first"
    )
    env = ComplianceWrapper(ExecutionEnv(), rules="strict")
    infos = [run_execution_episode(env, agent, s) for s in seeds]
    sf = np.array([i["shortfall_bps"] for i in infos])
    audit = env.get_wrapper_attr("audit").summary()
    text = (
        f"shortfall {sf.mean():.2f} ± {sf.std(ddof=1) / np.sqrt(sf.size):.2f} bps; "
        f"{sum(i['compliance_violations'] for i in infos)} interventions over {len(infos)} episodes"
    )
    print(text)
    print(audit.to_string(index=False) if len(audit) else "(no interventions)")
    return f'Under `compliance="strict"`: {text}\n\n' + (
        _markdown(audit) if len(audit) else "(no interventions)"
    )


def portfolio_baselines(args: DemoArgs) -> str:
    from trendgym.agents.portfolio import portfolio_baseline_table

    _section("6. Portfolio-v0: trend baselines on the synthetic 'futures' market (20 years)")
    table = (
        portfolio_baseline_table("futures", seed=args.seed).rename_axis("baseline").reset_index()
    )
    print(table.round(3).to_string(index=False))
    return _markdown(table.round(3))


def walk_forward_report(args: DemoArgs, out: Path) -> str:
    from trendgym.evaluate import evaluate_agent

    _section(
        "7. Walk-forward evaluation: PPO on Portfolio-v0 (futures) vs the trend baselines, "
        "2 folds x 2 seeds x 8192 steps, placebo, survivorship and 2x-cost checks"
    )
    # the shared per-asset policy on raw rows: the setting that generalises (README, training)
    report = evaluate_agent(
        "trendgym/Portfolio-v0",
        "ppo",
        out_dir=out,
        n_folds=2,
        seeds=(0, 1),
        timesteps=8192,
        extractor=None,
        env_kwargs={"preset": "futures", "data_seed": args.seed},
    )
    verdict = report.assessment.verdict
    print(verdict.headline)
    print(f"report: {report.index_html}")
    return f"{verdict.headline}\n\nFull report: [index.html](index.html), [report.md](report.md)"


def _markdown(df) -> str:
    """A DataFrame as a markdown table (no extra dependency)."""
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "---|" * len(df.columns)
    rows = ["| " + " | ".join(map(str, row)) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def main(args: DemoArgs | None = None) -> Path:
    args = args or DemoArgs()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    parts = [
        "# trendgym demo\n",
        "## Order book stylized facts\n",
        order_book_facts(),
        "\n## Execution\n",
        execution_agent(args, out),
        "\n## Portfolio baselines (futures preset)\n",
        portfolio_baselines(args),
        "\n## Walk-forward evaluation\n",
        walk_forward_report(args, out),
    ]
    (out / "demo.md").write_text("\n".join(parts) + "\n")
    _section(f"done in {time.perf_counter() - t0:.0f} s; summary written to {out / 'demo.md'}")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", default=DemoArgs.out)
    ap.add_argument("--timesteps", type=int, default=DemoArgs.timesteps)
    ap.add_argument("--episodes", type=int, default=DemoArgs.episodes)
    ap.add_argument("--seed", type=int, default=DemoArgs.seed)
    a = ap.parse_args()
    main(DemoArgs(out=a.out, timesteps=a.timesteps, episodes=a.episodes, seed=a.seed))
