"""The engine at a git revision against this tree, in one process: same workloads, timed in turn.

    python benchmarks/ab.py [--before 9b6eedb] [--rounds 7] [--seconds 1.0] [--slices 10]
                            [--parallel serial] [--clock wall|cpu] [--only TEXT]

The revision's ``__init__.py`` and ``envs/`` are extracted once (``git archive``) into
``.ab_cache/<commit>/trendgym_before/`` with every ``trendgym`` import (and env id) renamed
``trendgym_before``, so both engines import side by side; the env classes are built directly,
never through ``gym.make``. Before any timing, each workload runs on both engines with the
same seeds and actions and must give bit-identical observations, rewards and flags (the order
book: the same trades); a difference stops the script. That first run also compiles or loads
the kernels, so no timing includes compilation.

Workloads (both engines, same configuration): Execution-v0 single env (defaults), its native
vector env (N = 64), Portfolio-v0 single env (30 assets, whole-span episodes), its native
vector env (N = 64), and ``OrderBook.process`` on a stream recorded from the calm flow. Each
round gives each side ``--seconds``, cut into ``--slices`` slices taken in turn (B A B A ...;
the order alternates between rounds), so a spell of load from other processes hits both sides
of a round alike; the table gives each side's median, min and max rate and the median, min
and max of the rounds' paired after/before ratios. Single envs time only
``step`` calls (resets excluded); vector envs time ``step`` including their autoresets. The
vector envs run one thread by default (``--parallel serial``): ``prange`` on a shared machine
measures the other processes more than the kernels; ``--clock cpu`` times this thread's CPU
time instead of the elapsed time, which other processes on the cores disturb far less.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".ab_cache"
BEFORE = "9b6eedb"  # the last commit before the engine became one package per env
PACKAGE = "trendgym_before"
# the package's name where code names it: `from trendgym.x import`, `import trendgym`, module
# paths ("trendgym.envs.x:Class") and env ids ("trendgym/Execution-v0"); prose is left alone
_IMPORT = re.compile(r"\btrendgym\b(?=[./:]|\s+import\b)|(?<=\bimport )trendgym\b")
_LEFT = re.compile(r"^\s*(from|import)\s+trendgym\b(?!_)", re.MULTILINE)

# where each engine keeps its classes: the layout before the restructure, then this tree's
CLASSES = {
    "flat": {
        "ExecutionEnv": "envs.execution:ExecutionEnv",
        "ExecutionVectorEnv": "envs.vector.execution:ExecutionVectorEnv",
        "PortfolioEnv": "envs.portfolio:PortfolioEnv",
        "PortfolioVectorEnv": "envs.vector.portfolio:PortfolioVectorEnv",
        "OrderBook": "envs.lob.book:OrderBook",
    },
    "packages": {
        "ExecutionEnv": "envs.execution:ExecutionEnv",
        "ExecutionVectorEnv": "envs.execution.vector:ExecutionVectorEnv",
        "PortfolioEnv": "envs.portfolio:PortfolioEnv",
        "PortfolioVectorEnv": "envs.portfolio.vector:PortfolioVectorEnv",
        "OrderBook": "envs.lob.book:OrderBook",
    },
}


class RevisionMissing(RuntimeError):
    """git cannot give the revision here (not a git checkout, or a shallow clone)."""


def resolve(rev: str, root: Path = ROOT) -> str:
    """The full commit hash of `rev` in `root`'s repository."""
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise RevisionMissing(f"git cannot resolve revision {rev!r} in {root}") from exc
    return out.stdout.strip()


def rename_imports(text: str) -> str:
    """`text` with the package's absolute imports, module paths and env ids renamed."""
    return _IMPORT.sub(PACKAGE, text)


def extract(rev: str, root: Path = ROOT, cache: Path = CACHE) -> Path:
    """The directory holding package ``trendgym_before`` (the engine at `rev`), extracted on
    the first call and reused after (the numba caches then live beside its files)."""
    commit = resolve(rev, root)
    home = cache / commit
    if (home / PACKAGE / "__init__.py").exists():
        return home
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", "--format=tar", commit, "__init__.py", "envs"],
        capture_output=True,
        check=True,
    ).stdout
    staging = cache / f"{commit}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(staging / PACKAGE, filter="data")
    for path in (staging / PACKAGE).rglob("*.py"):
        text = rename_imports(path.read_text())
        if _LEFT.search(text):
            raise RuntimeError(f"{path}: an import of trendgym was left unrenamed")
        path.write_text(text)
    os.replace(staging, home)  # complete or absent: a killed run leaves only a .partial
    return home


def load_engine(package: str, home: Path | None = None) -> dict[str, Any]:
    """The benchmarked classes of `package` (``trendgym``, or ``trendgym_before`` from `home`)."""
    if home is not None and str(home) not in sys.path:
        sys.path.insert(0, str(home))
    pkg = importlib.import_module(package)
    layout = "packages" if (Path(pkg.__file__).parent / "envs/execution").is_dir() else "flat"
    out = {}
    for name, where in CLASSES[layout].items():
        module, attr = where.split(":")
        out[name] = getattr(importlib.import_module(f"{package}.{module}"), attr)
    return out


# ---------------------------------------------------------------- workloads
@dataclass
class Workload:
    """One thing timed on both engines: `build(engine, clock)` returns a `run(seconds) ->
    rate` closure (state built untimed; `clock`: time.perf_counter or time.thread_time),
    `same(before, after)` raises unless the two engines give bit-identical results on it."""

    name: str
    unit: str
    build: Callable[[dict[str, Any], Callable[[], float]], Callable[[float], float]]
    same: Callable[[dict[str, Any], dict[str, Any]], str]


EXECUTION = {}
PORTFOLIO = {"n_assets": 30, "window": None}
N_VECTOR = 64


def _bits(*arrays: Any) -> bytes:
    """The bytes of the values, field by field for a record array (its padding is not data)."""
    out = []
    for a in map(np.asarray, arrays):
        columns = [a[name] for name in a.dtype.names] if a.dtype.names else [a]
        out += [np.ascontiguousarray(c).tobytes() for c in columns]
    return b"".join(out)


def _bank(rng: np.random.Generator, shape: tuple[int, ...], lo: float, hi: float) -> np.ndarray:
    return rng.uniform(lo, hi, (64, *shape)).astype(np.float32)


def _single_episodes(env: Any, bank: np.ndarray, seed: int):
    """Yield (obs, reward, terminated, truncated) of one episode under the action bank."""
    obs, _ = env.reset(seed=seed)
    yield obs, 0.0, False, False
    done, i = False, 0
    while not done:
        obs, reward, term, trunc, _ = env.step(bank[i % len(bank)])
        yield obs, reward, term, trunc
        done, i = term or trunc, i + 1


def _compare(name: str, a, b) -> int:
    """Steps compared; raises at the first one whose bits differ."""
    n = 0
    for n, (x, y) in enumerate(zip(a, b, strict=True)):
        if _bits(*x) != _bits(*y):
            raise AssertionError(f"{name}: the engines differ at step {n}")
    return n + 1


def single(cls: str, kwargs: dict, lo: float, hi: float, seeds: tuple[int, ...]) -> Workload:
    """A single env stepped with a fixed action bank; rate = steps / time inside `step`."""

    def make(engine):
        env = engine[cls](**kwargs)
        return env, _bank(np.random.default_rng(0), env.action_space.shape, lo, hi)

    def build(engine, clock):
        env, bank = make(engine)
        episode = [0]

        def run(seconds: float) -> float:
            steps, spent = 0, 0.0
            while spent < seconds or steps == 0:
                env.reset(seed=episode[0])
                episode[0] += 1
                done, t0 = False, clock()
                while not done:
                    _, _, term, trunc, _ = env.step(bank[steps & 63])
                    steps += 1
                    done = term or trunc
                spent += clock() - t0
            return steps / spent

        return run

    def same(before, after):
        (a, bank), (b, _) = make(before), make(after)
        n = sum(
            _compare(cls, _single_episodes(a, bank, s), _single_episodes(b, bank, s)) for s in seeds
        )
        return f"{n} steps over seeds {list(seeds)}"

    return Workload(f"{cls} single env", "steps/s", build, same)


def vector(cls: str, kwargs: dict, lo: float, hi: float, steps: int, parallel) -> Workload:
    """A native vector env of N_VECTOR; rate = env-steps / time inside `step`."""

    def make(engine):
        env = engine[cls](N_VECTOR, parallel=parallel, **kwargs)
        shape = (N_VECTOR, *env.single_action_space.shape)
        return env, _bank(np.random.default_rng(0), shape, lo, hi)

    def build(engine, clock):
        env, bank = make(engine)
        env.reset(seed=0)

        def run(seconds: float) -> float:
            calls, t0 = 0, clock()
            while (elapsed := clock() - t0) < seconds or calls < 3:
                env.step(bank[calls & 63])
                calls += 1
            return calls * N_VECTOR / elapsed

        return run

    def trajectory(env, bank):
        yield env.reset(seed=0)[0], 0.0, False, False
        for i in range(steps):
            yield env.step(bank[i & 63])[:4]

    def same(before, after):
        (a, bank), (b, _) = make(before), make(after)
        n = _compare(cls, trajectory(a, bank), trajectory(b, bank))
        return f"{n} batched steps of N = {N_VECTOR}"

    return Workload(f"{cls} N = {N_VECTOR}", "env-steps/s", build, same)


def order_book(n_messages: int) -> Workload:
    """`OrderBook.process` of a recorded stream on a seeded book; rate = messages / time."""
    from trendgym.benchmarks.lob import generate_stream

    stream: list[np.ndarray] = []

    def messages() -> tuple[np.ndarray, np.ndarray]:
        if not stream:
            stream.extend(generate_stream(n_messages, "calm"))
        return stream[0], stream[1]

    def build(engine, clock):
        seed_msgs, msgs = messages()

        def run(seconds: float) -> float:
            done, spent = 0, 0.0
            while spent < seconds or done == 0:
                book = engine["OrderBook"]()
                book.process(seed_msgs)
                t0 = clock()
                book.process(msgs)
                spent += clock() - t0
                done += msgs.size
            return done / spent

        return run

    def same(before, after):
        seed_msgs, msgs = messages()
        trades = []
        for engine in (before, after):
            book = engine["OrderBook"]()
            book.process(seed_msgs)
            trades.append((book.process(msgs), book.totals()))
        (ta, sa), (tb, sb) = trades
        if ta.dtype != tb.dtype or _bits(ta) != _bits(tb) or sa != sb:
            raise AssertionError("OrderBook: the engines give different trades or totals")
        return f"{ta.size:,} trades from {msgs.size:,} messages"

    return Workload("OrderBook.process", "messages/s", build, same)


def workloads(parallel: bool | None, messages: int, check_steps: int = 200) -> list[Workload]:
    return [
        single("ExecutionEnv", EXECUTION, -1.0, 1.0, seeds=(0, 1, 2)),
        vector("ExecutionVectorEnv", EXECUTION, -1.0, 1.0, check_steps, parallel),
        single("PortfolioEnv", PORTFOLIO, -0.2, 0.2, seeds=(0,)),
        vector("PortfolioVectorEnv", PORTFOLIO, -0.2, 0.2, check_steps, parallel),
        order_book(messages),
    ]


# ---------------------------------------------------------------- timing
def alternate(
    run_before: Callable[[float], float],
    run_after: Callable[[float], float],
    rounds: int,
    seconds: float,
    slices: int = 1,
) -> tuple[list[float], list[float]]:
    """Rates of each side over `rounds`, timed in turn: B A in odd rounds, A B in even ones.
    With `slices` > 1 each side's `seconds` are cut into that many slices taken B A B A ...
    (the mean of their rates), so both sides of a round see the same spells of load."""
    before, after = [], []
    part = seconds / slices
    for r in range(rounds):
        first, second = (run_after, run_before) if r % 2 else (run_before, run_after)
        rates: tuple[list[float], list[float]] = ([], [])
        for _ in range(slices):
            rates[0].append(first(part))
            rates[1].append(second(part))
        one, two = (statistics.fmean(x) for x in rates)
        before.append(two if r % 2 else one)
        after.append(one if r % 2 else two)
    return before, after


def summary(before: list[float], after: list[float]) -> dict[str, float]:
    """Median, min and max of each side; the median, min and max of the rounds' after/before
    (paired: each round's two sides ran under the same load)."""
    paired = [a / b for a, b in zip(after, before, strict=True)]
    return {
        "before": statistics.median(before),
        "before_min": min(before),
        "before_max": max(before),
        "after": statistics.median(after),
        "after_min": min(after),
        "after_max": max(after),
        "ratio": statistics.median(paired),
        "ratio_min": min(paired),
        "ratio_max": max(paired),
    }


def _rate(v: float) -> str:
    return f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.1f}k"


def checked(items: list[Workload], before: dict, after: dict, clock) -> list[tuple]:
    """(workload, before's run, after's run) of each, once the two engines have given the
    same results on it (the first runs also compile or load every kernel, untimed)."""
    print("\nbit-identity of the two engines (also compiles or loads every kernel, untimed):")
    jobs = []
    for w in items:
        t0 = time.perf_counter()
        try:
            what = w.same(before, after)
        except AssertionError as exc:
            raise SystemExit(f"not timed: {exc}") from None
        print(f"  {w.name:<28} identical: {what} ({time.perf_counter() - t0:.1f} s)")
        jobs.append((w, w.build(before, clock), w.build(after, clock)))
    for _, run_b, run_a in jobs:  # a first untimed call of each: allocations, caches
        run_b(0.05), run_a(0.05)
    return jobs


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--before", default=BEFORE, help="git revision of the 'before' engine")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=1.0, help="timed seconds per side per round")
    ap.add_argument(
        "--slices",
        type=int,
        default=10,
        help="each round's seconds cut into this many slices per side, taken in turn",
    )
    ap.add_argument("--messages", type=int, default=1_000_000, help="order book stream length")
    ap.add_argument(
        "--only", default="", help="time only the workloads whose name contains this text"
    )
    ap.add_argument(
        "--parallel",
        choices=("serial", "prange", "auto"),
        default="serial",
        help="the vector envs' kernel: one thread, prange, or the env's own choice",
    )
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: elapsed time; cpu: this thread's CPU time (steadier on a busy machine; "
        "serial only)",
    )
    args = ap.parse_args()
    parallel = {"serial": False, "prange": True, "auto": None}[args.parallel]
    if args.clock == "cpu" and args.parallel != "serial":
        ap.error(f"--clock cpu times one thread: it needs --parallel serial, got {args.parallel}")
    clock = time.perf_counter if args.clock == "wall" else time.thread_time

    t0 = time.perf_counter()
    try:
        home = extract(args.before)
    except RevisionMissing as exc:  # e.g. a shallow clone: nothing to compare with
        print(f"skipped: {exc}")
        return
    after = load_engine("trendgym")
    before = load_engine(PACKAGE, home)
    commit = resolve(args.before)[:10]
    print(f"before: {args.before} ({commit}), extracted to {home.relative_to(ROOT)}")
    print(f"after:  this tree ({ROOT}); load {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    print(f"imported both in {time.perf_counter() - t0:.1f} s")

    items = [w for w in workloads(parallel, args.messages) if args.only in w.name]
    if not items:
        ap.error(f"--only {args.only!r} matches no workload")
    jobs = checked(items, before, after, clock)
    print(
        f"\n{args.rounds} rounds of {args.seconds:g} s ({args.clock} clock) per side in "
        f"{args.slices} alternating slices; vector envs {args.parallel}; median [min-max]"
    )
    print(f"{'workload':<28}{'unit':<13}{'before':>28}{'after':>28}{'after/before':>24}")
    for w, run_b, run_a in jobs:
        s = summary(*alternate(run_b, run_a, args.rounds, args.seconds, args.slices))
        b = f"{_rate(s['before'])} [{_rate(s['before_min'])}-{_rate(s['before_max'])}]"
        a = f"{_rate(s['after'])} [{_rate(s['after_min'])}-{_rate(s['after_max'])}]"
        r = f"{s['ratio']:.3f} [{s['ratio_min']:.3f}-{s['ratio_max']:.3f}]"
        print(f"{w.name:<28}{w.unit:<13}{b:>28}{a:>28}{r:>24}")
    print("(after/before: median [min-max] of the rounds' paired ratios)")


if __name__ == "__main__":
    main()
