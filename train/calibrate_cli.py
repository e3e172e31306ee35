"""``trendgym calibrate``: fit the simulator's order flow to a real tape, and compare the two.

    trendgym calibrate TAPE [ORDERBOOK] [--out DIR] [--hours H] [--seed S] [--no-hawkes]

TAPE is a LOBSTER message file (``*_message_*.csv``) or a Databento MBO file (``.dbn``,
``.dbn.zst``); ORDERBOOK, LOBSTER's matching orderbook file, seeds the fit and the
simulation with the book resting before the first message. Prints the fitted flow and the
stylized facts of the tape and of its calibrated simulation side by side; writes
``calibration.json`` (what ``ExecutionEnv(flow=...)`` and ``load_calibration`` read) and
``calibration.png`` into ``--out``. Exits 2, with one line, on a bad path or file.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

CALIBRATION_JSON = "calibration.json"
CALIBRATION_PNG = "calibration.png"


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an int: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative int, got {value}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("tape", metavar="TAPE", help="LOBSTER message file, or .dbn / .dbn.zst")
    p.add_argument(
        "orderbook", metavar="ORDERBOOK", nargs="?", default=None, help="LOBSTER orderbook file"
    )
    p.add_argument("--out", default=None, help="output folder (default runs/calibrate-<tape name>)")
    p.add_argument(
        "--hours",
        type=_positive_float,
        default=None,
        help="hours of calibrated flow to simulate (default: the tape's span)",
    )
    p.add_argument("--seed", type=_seed, default=0, help="seed of the simulation")
    p.add_argument(
        "--no-hawkes",
        dest="hawkes",
        action="store_false",
        help="fit market orders as a Poisson process (faster; no self-excitation)",
    )


def check_input(path: str, what: str) -> Path:
    """Refuse a path that is not a readable file, naming the argument."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"{what}: {path!r}: no such file")
    if not p.is_file():
        raise ValueError(f"{what}: {path!r} is not a file")
    if not os.access(p, os.R_OK):
        raise ValueError(f"{what}: {path!r} is not readable")
    return p


def default_out(tape: Path) -> Path:
    name = tape.name.split(".")[0] or "tape"
    return Path("runs") / f"calibrate-{name}"


def read_tape(tape: Path, orderbook: Path | None):
    """The tape (LOBSTER or DBN by its name), refusals as ValueError naming the file."""
    from trendgym.envs.lob.tape import is_dbn, read_tape

    if is_dbn(tape) and orderbook is not None:
        raise ValueError("ORDERBOOK: a DBN file carries no orderbook file; give TAPE alone")
    try:
        return read_tape(tape, orderbook)
    except ImportError as err:  # the optional databento-dbn extra is missing
        raise ValueError(str(err)) from None


def facts_table(facts: dict[str, tuple[float, float]]) -> str:
    """The facts side by side, one line each."""
    width = max(len(name) for name in facts)
    lines = [f"{'fact':<{width}}  {'tape':>12}  {'calibrated':>12}"]
    lines.append("-" * len(lines[0]))
    for name, (real, sim) in facts.items():
        lines.append(f"{name:<{width}}  {real:>12.4g}  {sim:>12.4g}")
    return "\n".join(lines)


def fit_summary(cal) -> str:
    near = ", ".join(f"{r:.3g}" for r in cal.limit_rates[:3])
    cancel = ", ".join(f"{r:.3g}" for r in cal.cancel_rates[:3])
    return (
        f"fitted on {cal.n_messages:,} messages over {cal.seconds / 3600:.2f} h "
        f"(tick {cal.tick} price units, lot {cal.lot}): limit arrivals {near}, ... per s; "
        f"cancels {cancel}, ... per order per s; {cal.n_market_orders:,} market orders, "
        f"baseline {cal.market_rate:.3g}/s per side, Hawkes alpha {cal.hawkes_alpha:.3g} "
        f"beta {cal.hawkes_beta:.3g}, mean size {cal.market_size:.3g} lots; "
        f"{cal.unknown_ids:,} messages on unknown orders, "
        f"{cal.anonymous_reductions:,} on volume resting before the tape"
    )


def run(args: argparse.Namespace) -> int:
    from trendgym.train.preflight import check_writable_dir

    tape_path = check_input(args.tape, "TAPE")
    ob_path = None if args.orderbook is None else check_input(args.orderbook, "ORDERBOOK")
    out = Path(args.out) if args.out else default_out(tape_path)
    check_writable_dir(out, "--out")

    from trendgym.envs.lob.calibrate import calibrate_flow, save_calibration
    from trendgym.envs.lob.tape_facts import FACT_NAMES, facts_of, simulate_calibrated, tape_series

    started = time.perf_counter()
    tape = read_tape(tape_path, ob_path)
    cal = calibrate_flow(tape, hawkes=args.hawkes)
    print(fit_summary(cal), file=sys.stderr)
    seconds = cal.seconds if args.hours is None else args.hours * 3600.0
    sim = simulate_calibrated(cal, tape, seconds, seed=args.seed)
    real_series, sim_series = tape_series(tape), tape_series(sim)
    real, simulated = facts_of(real_series), facts_of(sim_series)
    facts = {name: (real[name], simulated[name]) for name in FACT_NAMES}
    print(facts_table(facts))

    out.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out / CALIBRATION_JSON, out / CALIBRATION_PNG
    save_calibration(
        cal,
        json_path,
        tape=str(tape_path),
        orderbook=None if ob_path is None else str(ob_path),
        simulated_seconds=seconds,
        seed=args.seed,
        hawkes=args.hawkes,
        facts={name: {"tape": r, "calibrated": s} for name, (r, s) in facts.items()},
    )
    from trendgym.train.calibrate_plot import plot_calibration

    plot_calibration(real_series, sim_series, png_path, title=tape_path.name)
    print(
        f"trendgym: wrote {json_path} and {png_path} in {time.perf_counter() - started:.1f} s; "
        f"train on it: trendgym train --env trendgym/Execution-v0 "
        f'--env-kwargs \'{{"flow": "{json_path}"}}\'',
        file=sys.stderr,
    )
    return 0
