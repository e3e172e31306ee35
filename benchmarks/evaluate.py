"""Figures for trendgym.evaluate: CSCV PBO on a 1000 x 50 matrix, and trial-ledger appends.

Run: .venv/bin/python benchmarks/evaluate.py [--verdict-rates N]
PBO is compared with a straightforward per-combination implementation in the same process.
``--verdict-rates N`` measures how often the verdict passes the planted-trend rule search and
fails the same search on random walks, over N data seeds (the tests check 60).
``--rule-search PRESET`` runs a search over four trend rules (``StaticTSMOM`` with lookbacks
21, 42, 63 and 126 days) on ``trendgym/Portfolio-v0`` with ``{"preset": PRESET}`` through the
walk-forward runner, ledger and placebo markets of ``trendgym evaluate`` (2 folds, default
data seed) and prints its verdict and wall time.
"""

from __future__ import annotations

import multiprocessing as mp
import tempfile
import time
from itertools import combinations
from pathlib import Path

import numpy as np

from trendgym.evaluate import Ledger, pbo


def pbo_per_combination(m: np.ndarray, n_splits: int) -> float:
    """Peer: slice, concatenate and compute Sharpe ratios for each combination."""
    t, n = m.shape
    edges = np.linspace(0, t, n_splits + 1).round().astype(int)
    blocks = [m[edges[s] : edges[s + 1]] for s in range(n_splits)]
    below_median = 0
    total = 0
    for chosen in combinations(range(n_splits), n_splits // 2):
        train = np.concatenate([blocks[s] for s in chosen])
        test = np.concatenate([blocks[s] for s in range(n_splits) if s not in chosen])
        r = train.mean(0) / train.std(0, ddof=1)
        rbar = test.mean(0) / test.std(0, ddof=1)
        best = int(np.argmax(r))
        rank = (rbar < rbar[best]).sum() + ((rbar == rbar[best]).sum() + 1) / 2
        w = rank / (n + 1)
        below_median += np.log(w / (1 - w)) <= 0
        total += 1
    return below_median / total


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _writer(path: str, n_rows: int) -> None:
    ledger = Ledger(path)
    r = np.random.default_rng(0).normal(0, 0.01, 250)
    for i in range(n_rows):
        ledger.append(
            "trendgym/Portfolio-v0", seed=i, params={"i": i}, oos_returns=r, code_version="bench"
        )


def main() -> None:
    m = np.random.default_rng(0).normal(0, 0.01, (1000, 50))
    t_vec = best_of(lambda: pbo(m, 16))
    t_loop = best_of(lambda: pbo_per_combination(m, 16), repeat=1)
    assert pbo(m, 16).pbo == pbo_per_combination(m, 16)
    print("PBO (CSCV), T=1000, N=50, S=16 -> 12,870 combinations")
    print(f"  trendgym.evaluate.pbo (block sums + matmul): {t_vec * 1e3:8.1f} ms")
    print(
        f"  per-combination numpy peer:                  {t_loop * 1e3:8.1f} ms  ({t_loop / t_vec:.1f}x slower)"
    )

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "ledger.sqlite")
        Ledger(path)
        n = 500
        t0 = time.perf_counter()
        _writer(path, n)
        t1 = time.perf_counter() - t0
        print("Trial ledger appends (one transaction each, 250 OOS returns per row)")
        print(f"  1 process : {n / t1:8.0f} rows/s")
        ctx = mp.get_context("fork")
        procs = [ctx.Process(target=_writer, args=(path, n)) for _ in range(4)]
        t0 = time.perf_counter()
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        t4 = time.perf_counter() - t0
        print(
            f"  4 processes: {4 * n / t4:7.0f} rows/s total (2-core machine, includes process start)"
        )
        ledger = Ledger(path)
        assert ledger.n_trials() == 5 * n
        t0 = time.perf_counter()
        ledger.sr_variance()
        print(f"  sr_variance over {5 * n} trials: {(time.perf_counter() - t0) * 1e3:.1f} ms")


def verdict_rates(n_seeds: int) -> None:
    """Pass rate of the planted-trend search and fail rate of the random-walk search."""
    import sys
    from collections import Counter

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_verdict_skill import rule_verdict

    with tempfile.TemporaryDirectory() as tmp:
        for preset, first, want in (("planted_trend", 0, True), ("random_walk", 1000, False)):
            verdicts = [rule_verdict(preset, first + s, Path(tmp)) for s in range(n_seeds)]
            hits = sum(v.passes == want for v in verdicts)
            failed = Counter(name for v in verdicts for name in v.failed)
            word = "pass" if want else "fail"
            print(f"{preset}: {word}s in {hits} of {n_seeds} seeds; failed checks {dict(failed)}")


RULE_LOOKBACKS = (21, 42, 63, 126)


def rule_search(preset: str, ledger_path: str) -> None:
    """The verdict of a walk-forward search over trend rules on Portfolio-v0 (`preset`)."""
    from trendgym.agents.portfolio import StaticTSMOM
    from trendgym.evaluate.survivorship import policy_placebo
    from trendgym.evaluate.verdict import assess
    from trendgym.evaluate.walkforward import WalkForwardConfig, run_policy_search

    started = time.perf_counter()
    config = WalkForwardConfig(
        "trendgym/Portfolio-v0", algo="rules", env_kwargs={"preset": preset}, experiment="rules"
    )
    policies = {
        f"tsmom{lb}": (lambda env, lb=lb: StaticTSMOM(env, lookback=lb)) for lb in RULE_LOOKBACKS
    }
    ledger = Ledger(ledger_path)
    result = run_policy_search(config, policies, ledger=ledger)
    placebo = policy_placebo(config, policies, real=result, ledger=ledger)
    verdict = assess(result, ledger=ledger, placebo=placebo).verdict
    print(verdict.headline)
    for check in verdict.checks:
        print(f"  {check.name}: {check.status} - {check.detail}")
    print(f"wall time {(time.perf_counter() - started) / 60:.1f} min")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--verdict-rates", type=int, default=0, metavar="N")
    parser.add_argument("--rule-search", default=None, metavar="PRESET")
    parser.add_argument("--ledger", default="runs/ledger.sqlite", help="for --rule-search")
    args = parser.parse_args()
    if args.rule_search:
        rule_search(args.rule_search, args.ledger)
    elif args.verdict_rates:
        verdict_rates(args.verdict_rates)
    else:
        main()
