"""The ``trendgym`` console command: ``trendgym train --env ID --algo ppo --timesteps N ...``,
``trendgym evaluate ...``, ``trendgym calibrate TAPE ...``.

Subcommands live in :data:`COMMANDS` (name -> help, argument adder, runner); adding one (e.g.
``evaluate``) is one entry. Runners import their heavy modules lazily so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from trendgym.train.preflight import OneLineParser as _Parser
from trendgym.train.preflight import json_object


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive int, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative int, got {value}")
    return value


def _int(text: str) -> int:
    try:
        return int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an int: {text!r}") from None


def _add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--env", dest="env_id", required=True, help="Gymnasium env id, e.g. trendgym/Execution-v0"
    )
    p.add_argument("--algo", default="ppo", choices=["ppo", "sac", "a2c"])
    p.add_argument(
        "--timesteps",
        type=_positive_int,
        default=100_000,
        help="total env steps (across resumptions)",
    )
    p.add_argument("--seed", type=_non_negative_int, default=0)
    p.add_argument(
        "--n-envs", type=_positive_int, default=1, help="parallel envs (SubprocVecEnv when > 1)"
    )
    p.add_argument("--out", default=None, help="run directory (default runs/<env>-<algo>-s<seed>)")
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its newest checkpoint"
    )
    p.add_argument(
        "--extractor",
        default="default",
        choices=["default", "none", "mlp", "lstm", "attention"],
        help="features extractor (default: the env id's default)",
    )
    p.add_argument("--extractor-kwargs", type=json_object, default={}, metavar="JSON")
    p.add_argument(
        "--n-stack", type=_positive_int, default=1, help="frames stacked into each observation"
    )
    p.add_argument(
        "--env-kwargs", type=json_object, default={}, metavar="JSON", help="gymnasium.make kwargs"
    )
    p.add_argument(
        "--model-kwargs", type=json_object, default={}, metavar="JSON", help="SB3 keywords"
    )
    p.add_argument(
        "--no-norm-obs", dest="norm_obs", action="store_false", help="disable VecNormalize on obs"
    )
    p.add_argument("--norm-reward", action="store_true", help="also normalise rewards")
    p.add_argument(
        "--checkpoint-every",
        type=_non_negative_int,
        default=10_000,
        help="env steps between checkpoints",
    )
    p.add_argument("--vec-env", default="auto", choices=["auto", "dummy", "subproc"])
    p.add_argument("--no-progress", dest="progress_bar", action="store_false")
    p.add_argument("--no-tensorboard", dest="tensorboard", action="store_false")
    p.add_argument("--verbose", type=_non_negative_int, default=0)


def _run_train(args: argparse.Namespace) -> int:
    # Everything cheap is checked before torch and SB3 load (~10-20 s): a refusal costs a second.
    from trendgym.train import preflight

    run_dir = args.out or preflight.default_run_dir(args.env_id, args.algo, args.seed)
    probe, state, start = preflight.check_run(args.env_id, args.env_kwargs, run_dir, args.resume)
    if args.progress_bar:
        preflight.print_plan(args, run_dir, probe, state, start)

    from trendgym.train.core import TrainConfig, train

    fields = vars(args).copy()
    for key in ("command", "_run"):
        fields.pop(key, None)
    if fields["extractor"] == "none":
        fields["extractor"] = None
    print(train(TrainConfig(**fields), announce=False))
    return 0


_CALIBRATE = "trendgym.train.calibrate_cli"

COMMANDS: dict[
    str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
] = {
    "train": (
        "train an SB3 agent into a run directory (resumable)",
        _add_train_arguments,
        _run_train,
    ),
    "evaluate": (
        "walk-forward evaluation of an agent vs the baselines, with a verdict and a report",
        lambda p: __import__("trendgym.evaluate.cli", fromlist=["add_arguments"]).add_arguments(p),
        lambda a: __import__("trendgym.evaluate.cli", fromlist=["run"]).run(a),
    ),
    "calibrate": (
        "fit the simulated order flow to a LOBSTER or Databento tape; compare their facts",
        lambda p: __import__(_CALIBRATE, fromlist=["add_arguments"]).add_arguments(p),
        lambda a: __import__(_CALIBRATE, fromlist=["run"]).run(a),
    ),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``trendgym`` parser; ``only`` adds one command's arguments (others stay listed).

    Adding a command's arguments imports its module (``evaluate`` pulls in scipy, seconds of
    work), so ``main`` adds just the command being run and a usage error stays instant.
    """
    parser = _Parser(prog="trendgym", description="trendgym command line")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    for name, (help_text, add_arguments, runner) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if only is None or only == name:
            add_arguments(p)
        p.set_defaults(_run=runner)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    try:
        return args._run(args)
    except KeyboardInterrupt as stop:
        # TrainingInterrupted says what was saved and how to continue; a bare Ctrl-C came
        # before training started, so nothing was lost.
        message = str(stop) or "interrupted before training started; nothing was saved"
        print(f"trendgym: {message}", file=sys.stderr)
        return int(getattr(stop, "exit_code", 130))
    except (ValueError, TypeError) as err:
        parser.exit(2, f"trendgym: error: {' '.join(str(err).split())}\n")
    except OSError as err:  # disk full, permissions changed mid-run: one line, not a traceback
        parser.exit(1, f"trendgym: error: {err}\n")
    return 2  # unreachable: parser.exit raises SystemExit


if __name__ == "__main__":
    sys.exit(main())
