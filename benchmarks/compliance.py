"""Overhead of ComplianceWrapper (every rule of the "default" preset on) beside the bare envs.

Prints env steps/s (time inside ``step`` only; resets excluded) for:
- the bare env,
- Execution-v0 with a do-nothing pre-trade hook (the env's own hook plumbing, for reference),
- the wrapped env (its checks in numba kernels: one call per step and one per hooked batch
  in Execution-v0; inside the env's own step kernel in Portfolio-v0),
- the wrapped env with the pure-Python checks it had before (the tests' twins: for
  Execution-v0 the Python engine; for Portfolio-v0 the Python kill test and wrapper around
  the former weight-checking kernel, compiled the same way), the peer in the same process.
The same action sequence is replayed in every variant; each variant runs ``--repeats`` times
interleaved, and for every chunk of ``--chunk`` steps the fastest repeat counts (the machine
is shared: a burst of other work spoils a chunk, not a whole run). Steps are timed twice:
wall clock (``perf_counter``) and this thread's CPU time (``thread_time``, which other
processes cannot inflate by taking the core, though they still share its caches). Compile time of the numba kernels (or loading them from
numba's cache) is measured first and reported separately.

    .venv/bin/python benchmarks/compliance.py [--steps 20000] [--repeats 5] [--chunk 500]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit

from trendgym.agents.portfolio import StaticTSMOM
from trendgym.envs.compliance import AuditLog, ComplianceWrapper, resolve_rules
from trendgym.envs.execution import ExecutionEnv
from trendgym.envs.portfolio import PortfolioEnv

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' twins
from tests import test_compliance_portfolio_twin as port_twin  # noqa: E402
from tests.test_compliance_kernels import TwinExecutionCompliance  # noqa: E402


def _chunk_times(env, actions: np.ndarray, chunk: int, seed: int = 0):
    """Time inside step (wall, this thread's CPU) per chunk of `chunk` actions, and the
    interventions recorded."""
    env.reset(seed=seed)
    step = env.step
    n_chunks = -(-len(actions) // chunk)
    wall, cpu = np.zeros(n_chunks), np.zeros(n_chunks)
    clock, cpu_clock = time.perf_counter, time.thread_time
    for i, a in enumerate(actions):
        t0, c0 = clock(), cpu_clock()
        _, _, terminated, truncated, _ = step(a)
        wall[i // chunk] += clock() - t0
        cpu[i // chunk] += cpu_clock() - c0
        if terminated or truncated:
            env.reset()
    audit = getattr(env, "audit", None)
    return wall, cpu, (len(audit) if audit is not None else 0)


def _noop(messages, env):
    return messages


class PythonPathPortfolio:
    """The wrapper's former Portfolio-v0 path: Python kill test, the weight-checking kernel
    called from Python, then the env's plain step on the weights it allowed."""

    def __init__(self, env: PortfolioEnv, rules="default") -> None:
        self.env, self.audit, self._t = env, AuditLog(), 0
        self.action_space = env.action_space
        self.rules = resolve_rules(rules, "portfolio")
        self.engine = port_twin.TwinPortfolioCompliance(self.rules, self._record, env)
        self.violations = 0
        self._penalty = 0.0

    def _record(self, rule, action, asked, done, why):
        penalty = rule.penalty_for("portfolio") if action == "penalize" else 0.0
        self.audit.append(1, self._t, rule.name, action, asked, done, why, penalty)
        self.violations += 1
        self._penalty += penalty

    def reset(self, seed=None):
        out = self.env.reset(seed=seed)
        self._t = self.violations = 0
        self.engine.reset(self.env)
        return out

    def step(self, action):
        self._penalty = 0.0
        before = self.violations
        send = self.engine.check(action, self.env, self._t)
        obs, reward, terminated, truncated, info = self.env.step(action if send is action else send)
        self._t += 1
        if self._penalty:
            reward = float(reward) - self._penalty
        info["compliance"] = self.audit.to_dicts()[before:] if self.violations > before else ()
        info["compliance_violations"] = self.violations
        return obs, reward, terminated, truncated, info


def execution_variants():
    def bare():
        return ExecutionEnv(preset="calm")

    def noop_hook():
        env = ExecutionEnv(preset="calm")
        env.pre_trade = _noop
        return env

    def wrapped():
        return ComplianceWrapper(ExecutionEnv(preset="calm"), rules="default")

    def python_checks():
        env = ComplianceWrapper(ExecutionEnv(preset="calm"), rules="default")
        env.engine = TwinExecutionCompliance(env.rules, env._record, "EXEC")
        env.unwrapped.pre_trade = env.engine.pre_trade
        return env

    return {
        "bare": bare,
        "no-op hook": noop_hook,
        "wrapped": wrapped,
        "Python (before)": python_checks,
    }


def portfolio_variants():
    return {
        "bare": lambda: PortfolioEnv(),
        "wrapped": lambda: ComplianceWrapper(PortfolioEnv(), rules="default"),
        "Python (before)": lambda: PythonPathPortfolio(PortfolioEnv()),
    }


def portfolio_actions(n: int) -> np.ndarray:
    """StaticTSMOM's actions over the default market, replayed in every variant."""
    env = PortfolioEnv()
    policy = StaticTSMOM(env)
    obs, _ = env.reset(seed=0)
    out = []
    while len(out) < n:
        a, _ = policy.predict(obs)
        out.append(a)
        obs, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            obs, _ = env.reset()
    return np.array(out, dtype=np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=500, help="steps timed together")
    args = parser.parse_args()

    # the former path called the weight checks as a compiled kernel: compile the twin so
    for fn in ("_p_event", "_p_scale_exposure", "py_check_weights"):  # callees first
        setattr(port_twin, fn, njit(cache=False)(getattr(port_twin, fn)))
    t0 = time.perf_counter()  # compile (or load from cache) the kernels once
    for make in (*execution_variants().values(), *portfolio_variants().values()):
        env = make()
        env.reset(seed=0)
        env.step(env.action_space.sample())
    print(f"warm-up incl. numba compile/cache load: {time.perf_counter() - t0:.2f} s\n")

    rng = np.random.default_rng(0)
    cases = {
        "Execution-v0 (random actions)": (
            execution_variants(),
            rng.uniform(-1, 1, (args.steps, 3)).astype(np.float32),
        ),
        "Portfolio-v0 (StaticTSMOM actions)": (portfolio_variants(), portfolio_actions(args.steps)),
    }
    print(
        f"{'env':36s} {'variant':16s} {'steps/s':>9s} {'overhead':>9s} {'µs/step':>8s}"
        f" {'cpu steps/s':>12s} {'overhead':>9s} {'µs/step':>8s} {'interventions':>14s}"
    )
    for name, (variants, actions) in cases.items():
        best: dict[str, list] = {}  # per variant: per chunk, the fastest of the repeats
        for _ in range(args.repeats):
            for label, make in variants.items():
                wall, cpu, n = _chunk_times(make(), actions, args.chunk)
                if label not in best:
                    best[label] = [wall, cpu, n]
                np.minimum(best[label][0], wall, out=best[label][0])
                np.minimum(best[label][1], cpu, out=best[label][1])
        rates = {
            k: (len(actions) / w.sum(), len(actions) / c.sum(), n) for k, (w, c, n) in best.items()
        }
        bare_wall, bare_cpu, _ = rates["bare"]
        for label, (wall, cpu, n) in rates.items():
            cells = []
            for rate, bare in ((wall, bare_wall), (cpu, bare_cpu)):
                overhead = "" if label == "bare" else f"{(bare / rate - 1) * 100:8.1f}%"
                extra = "" if label == "bare" else f"{(1 / rate - 1 / bare) * 1e6:+8.2f}"
                cells.append((rate, overhead, extra))
            (w, wo, we), (c, co, ce) = cells
            print(
                f"{name:36s} {label:16s} {w:9.0f} {wo:>9s} {we:>8s} {c:12.0f} {co:>9s} {ce:>8s} {n:14d}"
            )


if __name__ == "__main__":
    main()
