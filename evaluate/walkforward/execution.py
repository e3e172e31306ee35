"""The Execution-v0 walk-forward domain: folds are blocks of held-out episode seeds."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from trendgym.evaluate.walkforward.config import WalkForwardConfig, cost_label, with_env_kwargs
from trendgym.evaluate.walkforward.domain import make_env, register_domain
from trendgym.evaluate.walkforward.plan import Block, FoldPlan
from trendgym.evaluate.walkforward.windows import TapeWindows, tape_windows

__all__ = ["ExecutionDomain"]


class ExecutionDomain:
    """Execution-v0: folds are disjoint blocks of held-out episode seeds.

    Training draws its episodes from the env's own generator (seeded by the trial seed);
    validation and OOS episodes use ``reset(seed=...)`` with seeds from ranges that training
    never passes, on ``config.test_env_kwargs`` when given (else ``env_kwargs``). When those
    replay a tape, each block also gets its own window of the tape (``replay_window``, see
    ``windows``), so validation and the folds' OOS episodes never overlap in time. One
    period = one episode, its "return" = -shortfall_bps / 1e4; a trial is
    scored by its per-episode savings against the best baseline on the same episodes
    (``paired``), since episodes differ far more than policies do. Costs scale the fee
    (``fee_bps``); spread and impact come from the simulated book and are never scaled.
    """

    name = "execution"
    periods_per_year = None
    paired = True
    # the wall-time estimate's rates: one core, PPO with the CLI's defaults (estimate.py)
    train_steps_per_second = 1150.0
    native_steps_per_second = 1300.0
    score_seconds_per_period = 0.025  # one episode
    VALIDATION_SEEDS = 500_000
    TEST_SEEDS = 1_000_000

    def plan(self, config: WalkForwardConfig) -> list[FoldPlan]:
        held_out = config.held_out_kwargs
        env = make_env("trendgym/Execution-v0", held_out).unwrapped
        fee = float(held_out.get("fee_bps", env.fee_bps))
        n = config.episodes
        n_val = max(
            2, int(round(n * config.validation_fraction / (1 - config.validation_fraction)))
        )
        windows = self._windows(config, env.replay_data)
        plans = []
        for k in range(config.n_folds):
            test_seeds = tuple(range(self.TEST_SEEDS + k * n, self.TEST_SEEDS + (k + 1) * n))
            val_seeds = tuple(
                range(self.VALIDATION_SEEDS + k * n_val, self.VALIDATION_SEEDS + (k + 1) * n_val)
            )
            val_kwargs, test_kwargs = dict(held_out), dict(held_out)
            describe = {
                "train": "episodes from the env's generator (trial seed)",
                "validation": f"seeds {val_seeds[0]}..{val_seeds[-1]}",
                "test": f"seeds {test_seeds[0]}..{test_seeds[-1]}",
            }
            if config.test_env_kwargs is not None:
                describe["train"] += f" on env_kwargs {json.dumps(dict(config.env_kwargs))}"
            if windows is not None:
                val_kwargs["replay_window"] = list(windows.validation)
                test_kwargs["replay_window"] = list(windows.folds[k])
                describe["validation"] += f" in tape window {_span(windows.validation)}"
                describe["test"] += f" in tape window {_span(windows.folds[k])}"
                describe["validation_window"] = list(windows.validation)
                describe["test_window"] = list(windows.folds[k])
            tests = {
                cost_label(m): Block({**test_kwargs, "fee_bps": fee * m}, test_seeds)
                for m in config.cost_multipliers
            }
            plans.append(
                FoldPlan(
                    fold=k,
                    train_kwargs=dict(config.env_kwargs),
                    validation=Block(val_kwargs, val_seeds),
                    tests=tests,
                    period_index=test_seeds,
                    describe=describe,
                )
            )
        return plans

    @staticmethod
    def _windows(config: WalkForwardConfig, replay: Any) -> TapeWindows | None:
        """The held-out blocks' windows of the replayed tape (None: simulated episodes)."""
        if replay is None:
            return None
        flag = "env_kwargs" if config.test_env_kwargs is None else "test_env_kwargs"
        return tape_windows(
            replay.usable,
            replay.episode_seconds,
            config.n_folds,
            config.validation_fraction,
            f"{flag} replay {replay.source}",
        )

    def episode_returns(self, env: Any, policy: Any, seed: int) -> np.ndarray:
        obs, info = env.reset(seed=seed)
        state, start, done = None, np.ones((1,), dtype=bool), False
        while not done:
            action, state = policy.predict(
                obs, state=state, episode_start=start, deterministic=True
            )
            start = np.zeros((1,), dtype=bool)
            obs, _reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        return np.array([-float(info["shortfall_bps"]) * 1e-4])

    def baselines(self, env: Any) -> dict[str, Any]:
        from trendgym.agents.execution import TWAP, VWAP, AlmgrenChriss

        return {"TWAP": TWAP(env), "VWAP": VWAP(env), "AlmgrenChriss": AlmgrenChriss(env)}

    def placebos(self, config: WalkForwardConfig) -> list[WalkForwardConfig]:
        """The same search, book and episodes with the observation replaced by noise: what
        the search finds when there is nothing to read, scored against the same baseline."""
        return [
            with_env_kwargs(
                config, config.env_kwargs, experiment=f"{config.experiment}/placebo", blind=True
            )
        ]


def _span(window: tuple[float, float]) -> str:
    return f"[{window[0]:.6g}, {window[1]:.6g}] s"


register_domain("trendgym/Execution-v0", ExecutionDomain)
