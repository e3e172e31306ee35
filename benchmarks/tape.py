"""Market data tapes: load a 1M-message LOBSTER file written by the project, and rebuild the
book from it (messages/s) with the numba kernel, beside the tests' pure-Python twin on the
same messages in the same process. Compile time is excluded (each kernel runs once on a
small tape first).

Then Execution-v0 replaying a tape of the same flow beside simulated mode (same kwargs, same
process): single env steps/s and resets/s, native vector env env-steps/s with the two modes
timed in turn, round by round (the replay/simulated figure is the median of the rounds' paired
ratios), on one thread and with the env's own kernel choice.

    python benchmarks/tape.py [--messages 1000000] [--preset calm] [--python-messages 200000]
    python benchmarks/tape.py --replay-only [--replay-messages 200000] [--envs 64 256]
                              [--replay-steps 100000] [--rounds 9]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' twin
from tests.tape_twin import TwinRebuild  # noqa: E402
from trendgym.benchmarks.ab import summary  # noqa: E402
from trendgym.envs.lob import OrderBook, read_lobster, record_flow, write_lobster  # noqa: E402
from trendgym.envs.lob.flow import OrderFlow, flow_params  # noqa: E402
from trendgym.envs.lob.tape import MessageTape  # noqa: E402


def simulated_tape(n_messages: int, preset: str, seed: int = 0) -> MessageTape:
    """At least `n_messages` feed events of the flow (stamped to the second), cut to size."""
    flow = OrderFlow(OrderBook(), flow_params(preset), np.random.default_rng(seed), record=1 << 14)
    flow.seed_book()
    rate = 40.0  # events per second, roughly, for the presets; recorded until there are enough
    parts, total, clock = [], 0, 34200.0
    while total < n_messages:
        seconds = float(np.ceil(max(60.0, (n_messages - total) / rate)))
        part = record_flow(flow, seconds, resolution=1.0, start_time=clock)
        # the resting orders open each part at its start time: only the first part keeps them
        parts.append(part.messages if not parts else part.messages[part.time > clock])
        total += parts[-1].shape[0]
        clock += seconds
    m = np.concatenate(parts)[:n_messages]
    return MessageTape(m, tick=100, source=f"<{preset} flow>")


def best_of(fn, repeat: int = 3) -> float:
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def python_rebuild(messages: np.ndarray) -> TwinRebuild:
    twin = TwinRebuild(100)
    for ev, oid, size, price, d in zip(
        messages["event"].tolist(),
        messages["order_id"].tolist(),
        messages["size"].tolist(),
        messages["price"].tolist(),
        messages["direction"].tolist(),
        strict=True,
    ):
        twin.apply(ev, oid, size, price, d)
    return twin


def env_rates(env, steps: int, seed: int = 0) -> tuple[float, float]:
    """(steps/s, resets/s) of a single env under random actions, each timed on its own."""
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, (steps, 3)).astype(np.float32)
    env.reset(seed=seed)
    env.step(actions[0])  # compiled or loaded from the cache outside the timing
    step_time = reset_time = 0.0
    n_resets = 0
    t = time.perf_counter()
    for a in actions:
        _, _, done, _, _ = env.step(a)
        if done:
            step_time += time.perf_counter() - t
            t = time.perf_counter()
            env.reset()
            reset_time += time.perf_counter() - t
            n_resets += 1
            t = time.perf_counter()
    step_time += time.perf_counter() - t
    return steps / step_time, n_resets / reset_time if n_resets else float("nan")


def paired_vector_rates(
    venvs: dict[str, object], steps: int, rounds: int, clock=time.perf_counter, seed: int = 0
) -> dict[str, list[float]]:
    """Env-steps/s of each native vector env (autoresets included) per round: every round
    steps each env `steps` times with the same actions, in turn (the order alternates between
    rounds), so a spell of load from other processes hits both modes of a round alike."""
    rng = np.random.default_rng(seed)
    n = next(iter(venvs.values())).num_envs
    first = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
    for venv in venvs.values():
        venv.reset(seed=seed)
        venv.step(first)  # untimed: first-call costs
    rates: dict[str, list[float]] = {name: [] for name in venvs}
    for r in range(rounds):
        actions = rng.uniform(-1, 1, (steps, n, 3)).astype(np.float32)
        for name in list(venvs)[:: 1 if r % 2 == 0 else -1]:
            t = clock()
            for a in actions:
                venvs[name].step(a)
            rates[name].append(steps * n / (clock() - t))
    return rates


def replay_figures(
    n_messages: int, preset: str, envs: list[int], steps: int, rounds: int = 9
) -> None:
    """Execution-v0 on a recorded tape vs on its simulated flow: steps/s, resets/s."""
    from trendgym.envs.execution import ExecutionEnv
    from trendgym.envs.execution.vector import ExecutionVectorEnv

    t = time.perf_counter()
    tape = simulated_tape(n_messages, preset)
    span = tape.time[-1] - tape.time[0]
    print(
        f"replay tape: {len(tape):,} messages over {span:.0f} s ({len(tape) / span:.0f}/s), "
        f"made in {time.perf_counter() - t:.1f} s"
    )
    t = time.perf_counter()
    ExecutionEnv(replay=tape)
    print(f"replay set-up (checkpoints, start span): {time.perf_counter() - t:.2f} s")
    kw = {"horizon": 40, "step_seconds": 2.5}
    modes = (("simulated", {"preset": preset}), ("replay", {"replay": tape}))
    print(f"{'mode':<10}{'single steps/s':>16}{'resets/s':>10}")
    for name, extra in modes:
        steps_s, resets_s = env_rates(ExecutionEnv(**kw, **extra), steps)
        print(f"{name:<10}{steps_s:>16,.0f}{resets_s:>10,.0f}")
    print(
        f"native vector env: {rounds} rounds per N, each mode in turn; kernel on one thread "
        "(CPU time of this thread) and as the env chooses (wall time, both cores); "
        "median [min-max]"
    )
    print(f"{'kernel':<8}{'N':>5}{'simulated':>12}{'replay':>12}{'replay/simulated':>26}")
    for n in envs:
        for kernel, parallel, clock in (
            ("serial", False, time.thread_time),
            ("auto", None, time.perf_counter),
        ):
            venvs = {
                name: ExecutionVectorEnv(n, parallel=parallel, **kw, **extra)
                for name, extra in modes
            }
            rates = paired_vector_rates(venvs, max(10, steps // n // rounds), rounds, clock)
            s = summary(rates["simulated"], rates["replay"])  # replay / simulated, paired
            ratio = f"{s['ratio']:.2f} [{s['ratio_min']:.2f}-{s['ratio_max']:.2f}]"
            print(f"{kernel:<8}{n:>5}{s['before']:>12,.0f}{s['after']:>12,.0f}{ratio:>26}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--preset", default="calm")
    ap.add_argument("--python-messages", type=int, default=200_000)
    ap.add_argument("--replay-only", action="store_true")
    ap.add_argument("--replay-messages", type=int, default=200_000)
    ap.add_argument("--replay-steps", type=int, default=100_000)
    ap.add_argument("--envs", type=int, nargs="*", default=[64, 256])
    ap.add_argument("--rounds", type=int, default=9, help="vector env rounds per mode and N")
    args = ap.parse_args()
    if not args.replay_only:
        tape_figures(args)
    replay_figures(args.replay_messages, args.preset, args.envs, args.replay_steps, args.rounds)


def tape_figures(args) -> None:
    """Loading LOBSTER files and rebuilding the book from them."""
    t = time.perf_counter()
    tape = simulated_tape(args.messages, args.preset)
    print(f"simulated {len(tape):,} messages ({args.preset}) in {time.perf_counter() - t:.1f} s")
    small = MessageTape(tape.messages[:1000], tick=100)
    for levels in (0, 1, 10):  # compile (or load from numba's cache) outside the timings
        small.rebuild(levels)

    with tempfile.TemporaryDirectory() as tmp:
        msg, ob = Path(tmp) / "messages.csv", Path(tmp) / "orderbook_10.csv"
        t = time.perf_counter()
        write_lobster(tape, msg, ob, levels=10)
        print(
            f"write_lobster: {time.perf_counter() - t:.2f} s "
            f"(message file {msg.stat().st_size / 1e6:.0f} MB, orderbook {ob.stat().st_size / 1e6:.0f} MB)"
        )
        read_lobster(msg)  # warm the file cache and pyarrow
        load = best_of(lambda: read_lobster(msg))
        print(
            f"read_lobster, 1 file: {load:.3f} s for {len(tape):,} messages "
            f"({len(tape) / load / 1e6:.1f}M messages/s; tape {tape.messages.nbytes / 1e6:.0f} MB in memory)"
        )
        both = best_of(lambda: read_lobster(msg, ob), repeat=2)
        print(f"read_lobster with the 10-level orderbook file: {both:.3f} s")
        loaded = read_lobster(msg, ob)

    n = len(tape)
    rebuild = best_of(lambda: tape.rebuild(0))
    print(
        f"rebuild (numba, no snapshots):  {n / rebuild / 1e6:6.1f}M messages/s ({rebuild * 1e3:.0f} ms)"
    )
    for levels in (1, 10):
        s = best_of(lambda levels=levels: tape.snapshots(levels))
        print(
            f"rebuild + snapshots({levels:2d}):        {n / s / 1e6:6.1f}M messages/s ({s * 1e3:.0f} ms)"
        )
    s = best_of(lambda: loaded.snapshots(10), repeat=2)
    print(
        f"rebuild + snapshots(10) checked against the file's rows: {n / s / 1e6:.1f}M messages/s "
        f"({loaded.stats['mismatched_rows']} rows disagree)"
    )

    k = min(args.python_messages, n)
    head = tape.messages[:k]
    py = best_of(lambda: python_rebuild(head), repeat=1)
    nb_head = MessageTape(head, tick=100)
    nb = best_of(lambda: nb_head.rebuild(0))
    print(
        f"pure-Python rebuild (tests' twin) on the first {k:,}: {k / py / 1e6:.2f}M messages/s; "
        f"numba on the same: {k / nb / 1e6:.1f}M messages/s ({py / nb:.0f}x)"
    )


if __name__ == "__main__":
    main()
