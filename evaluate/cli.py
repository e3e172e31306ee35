"""``trendgym evaluate``: walk-forward evaluation of an SB3 agent, written as a report folder.

    trendgym evaluate --env trendgym/Portfolio-v0 --algo ppo --folds 2 --seeds 2 \\
        --timesteps 2048 --out report/ [--ledger runs/ledger.sqlite] [--ray-address ADDR] \\
        [--env-kwargs JSON] [--test-env-kwargs JSON] [--model-kwargs JSON] [--episodes N] \\
        [--universe pit|futures] [--resume]

``--test-env-kwargs`` (Execution-v0) replaces ``--env-kwargs`` for the held-out episodes and
the baselines scored on them: train on a calibrated flow, test on a replayed day, whose
validation and OOS blocks are then disjoint windows of the tape.

Prints the verdict and the report path; exits 0 whether the agent passes or not (a failing
verdict is a result, not an error), 2 on bad arguments. SIGINT or SIGTERM stops it with one
line (exit 130 / 143): the finished trials are in the ledger, and the same command plus
``--resume`` continues from them.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from trendgym.train.preflight import json_object


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", dest="env_id", required=True, help="env id, e.g. trendgym/Portfolio-v0")
    p.add_argument("--algo", default="ppo", choices=["ppo", "sac", "a2c"])
    p.add_argument("--folds", type=int, default=2, help="walk-forward OOS blocks")
    p.add_argument("--seeds", type=int, default=2, help="training seeds per fold (0..S-1)")
    p.add_argument("--timesteps", type=int, default=2048, help="training steps per trial")
    p.add_argument("--out", default="report", help="report folder")
    p.add_argument("--ledger", default="runs/ledger.sqlite", help="trial ledger (SQLite)")
    p.add_argument(
        "--experiment", default="walk-forward", help="ledger tag whose trials the DSR counts"
    )
    p.add_argument(
        "--ray-address", default=None, help="run trials on Ray ('local' starts one here)"
    )
    p.add_argument(
        "--workers", type=int, default=None, help="local worker processes (0: in process)"
    )
    p.add_argument("--env-kwargs", type=json_object, default={}, metavar="JSON")
    p.add_argument(
        "--test-env-kwargs",
        type=json_object,
        default=None,
        metavar="JSON",
        help="execution: gym.make kwargs of the validation and OOS episodes and their "
        "baselines, replacing --env-kwargs there (e.g. a replayed tape; default: --env-kwargs)",
    )
    p.add_argument(
        "--model-kwargs", type=json_object, default={}, metavar="JSON", help="SB3 keywords"
    )
    p.add_argument(
        "--grid",
        type=json.loads,
        default=[{}],
        metavar="JSON",
        help="list of SB3 keyword sets tried in every fold (selection on the validation tail)",
    )
    p.add_argument(
        "--extractor", default="default", choices=["default", "none", "mlp", "lstm", "attention"]
    )
    p.add_argument("--baseline", default="best", help="baseline to beat at 2x costs, or 'best'")
    p.add_argument("--purge", type=int, default=0)
    p.add_argument("--embargo", type=int, default=0)
    p.add_argument(
        "--episodes", type=int, default=200, help="execution: held-out episodes per OOS fold"
    )
    p.add_argument(
        "--universe",
        choices=["pit", "futures"],
        default=None,
        help="state the data's universe (point-in-time or rolled futures) when it shows no "
        "delistings; synthetic presets know theirs",
    )
    p.add_argument(
        "--placebo-markets", type=int, default=2, help="placebo searches (portfolio markets)"
    )
    p.add_argument(
        "--n-envs",
        type=int,
        default=8,
        help="envs per trial, stepped by the env's native batched env (blind placebos: one "
        "after the other); together they collect the default rollout per update",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted evaluation in --out from the ledger's finished trials "
        "(same arguments)",
    )
    p.add_argument("--no-placebo", dest="placebo", action="store_false")
    p.add_argument("--no-progress", dest="progress", action="store_false")


def preflight(args: argparse.Namespace) -> None:
    """Refuse what would fail after training, before it starts; creates nothing.

    The env id and kwargs (the env is built once), the test kwargs (their env too, with the
    training env's spaces), the report folder and the ledger (not SQLite, corrupt, foreign,
    another schema version, read-only): each a one-line ValueError.
    """
    from trendgym.train.preflight import check_writable_dir, probe_env

    for flag, value in (("--folds", args.folds), ("--timesteps", args.timesteps)):
        if value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    if not isinstance(args.grid, list) or not all(isinstance(g, dict) for g in args.grid):
        raise ValueError(f"--grid must be a JSON list of objects, got {args.grid!r}")
    check_writable_dir(args.out, "--out")
    train = probe_env(args.env_id, args.env_kwargs)
    if args.test_env_kwargs is not None:
        check_test_env(args.env_id, train, args.test_env_kwargs)
    check_tape_windows(args)
    from trendgym.evaluate.ledger import check_ledger

    check_ledger(args.ledger)


def check_test_env(env_id: str, train: Any, test_env_kwargs: dict[str, Any]) -> None:
    """Refuse test kwargs the env id's domain cannot use, that its env refuses, or whose env
    has other spaces than the training env (`train`: its probe)."""
    from trendgym.evaluate.walkforward.domain import refuse_test_env_kwargs
    from trendgym.train.preflight import probe_env

    refuse_test_env_kwargs(env_id, test_env_kwargs, "--test-env-kwargs")
    test = probe_env(env_id, test_env_kwargs, flag="--test-env-kwargs")
    check_same_spaces(train, test)


def check_tape_windows(args: argparse.Namespace) -> None:
    """A replayed held-out tape must hold the validation and every OOS window: the plan is
    made once here (it only reads the tape), so a short tape is refused before the ledger."""
    held_out = args.env_kwargs if args.test_env_kwargs is None else args.test_env_kwargs
    if "replay" not in held_out:
        return
    from trendgym.evaluate.walkforward import WalkForwardConfig, domain_for

    config = WalkForwardConfig(
        env_id=args.env_id,
        n_folds=args.folds,
        episodes=args.episodes,
        env_kwargs=args.env_kwargs,
        test_env_kwargs=args.test_env_kwargs,
    )
    domain_for(config.env_id).plan(config)


def check_same_spaces(train: Any, test: Any) -> None:
    """The policy trained on one env must act in the other: the same spaces, else ValueError."""
    for what in ("observation_space", "action_space"):
        a, b = getattr(train, what), getattr(test, what)
        if a != b:
            raise ValueError(
                f"--test-env-kwargs: the test env's {what} {b} differs from the training "
                f"env's {a} (--env-kwargs); a policy trained on one cannot act in the other"
            )


def run(args: argparse.Namespace) -> int:
    preflight(args)
    from trendgym.evaluate.report import evaluate_agent

    report = evaluate_agent(
        args.env_id,
        args.algo,
        out_dir=args.out,
        n_folds=args.folds,
        seeds=tuple(range(args.seeds)),
        timesteps=args.timesteps,
        env_kwargs=args.env_kwargs,
        test_env_kwargs=args.test_env_kwargs,
        model_kwargs=args.model_kwargs,
        grid=tuple(args.grid),
        ledger=args.ledger,
        workers=args.workers,
        ray_address=args.ray_address,
        placebo=args.placebo,
        progress=args.progress,
        extractor=None if args.extractor == "none" else args.extractor,
        baseline=args.baseline,
        purge=args.purge,
        embargo=args.embargo,
        experiment=args.experiment,
        episodes=args.episodes,
        universe=args.universe,
        placebo_markets=args.placebo_markets,
        n_envs=args.n_envs,
        resume=args.resume,
        announce=print,
    )
    print(report.assessment.verdict.headline)
    print(f"wall time {report.wall_seconds / 60:.1f} min")
    print(report.index_html)
    return 0
