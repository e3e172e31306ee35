"""Evaluation reports: a folder of PNG plots, ``index.html``, ``report.md`` and ``results.json``.

``evaluate_agent(...)`` is the one call behind ``trendgym evaluate`` and ``make demo``: the
walk-forward search, the placebo search, the survivorship check, the verdict and the report.
Plots use matplotlib's Agg backend (no display needed); images are referenced relatively,
so the folder can be moved or served as is. Same seeds give the same numbers; only the
``generated`` timestamp differs between runs.
"""

from __future__ import annotations

import html
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trendgym.evaluate.ledger import DEFAULT_LEDGER_PATH, Ledger
from trendgym.evaluate.resume import EvaluationState, finished_count
from trendgym.evaluate.stats import drawdown
from trendgym.evaluate.survivorship import placebo_search, survivorship_check
from trendgym.evaluate.verdict import Assessment, assess, ledger_words
from trendgym.evaluate.walkforward import (
    WalkForwardConfig,
    cost_label,
    domain_for,
    run_walk_forward,
)
from trendgym.evaluate.walkforward.domain import refuse_test_env_kwargs
from trendgym.evaluate.walkforward.estimate import expected_seconds
from trendgym.evaluate.walkforward.signals import EvaluationInterrupted, stop_on_signals

__all__ = ["Report", "evaluate_agent", "write_report"]


@dataclass(frozen=True)
class Report:
    """Where the report went and what it concluded."""

    out_dir: Path
    assessment: Assessment
    images: tuple[str, ...]
    wall_seconds: float = 0.0
    files: tuple[str, ...] = field(default=("index.html", "report.md", "results.json"))

    @property
    def passes(self) -> bool:
        return self.assessment.verdict.passes

    @property
    def index_html(self) -> Path:
        return self.out_dir / "index.html"


# --------------------------------------------------------------------------- plots

_AGENT_COLOR = "#d62728"


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out_dir: Path, name: str) -> str:
    # no timestamps in the PNG metadata: identical runs give identical files
    fig.savefig(out_dir / name, dpi=100, bbox_inches="tight", metadata={"Software": None})
    _plt().close(fig)
    return name


def _equity_plot(a: Assessment, out_dir: Path) -> str:
    plt = _plt()
    res, one = a.result, cost_label(1.0)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True, height_ratios=[2, 1])
    series = {n: per[one] for n, per in res.baseline_returns.items()}
    for name, s in series.items():
        ax1.plot(s.index, np.cumprod(1.0 + s.to_numpy()), lw=1, alpha=0.8, label=name)
        ax2.plot(s.index, -drawdown(s.to_numpy()), lw=0.8, alpha=0.7)
    agent = res.agent_returns[one]
    ax1.plot(
        agent.index, np.cumprod(1.0 + agent.to_numpy()), lw=2, color=_AGENT_COLOR, label="agent"
    )
    ax2.plot(agent.index, -drawdown(agent.to_numpy()), lw=1.5, color=_AGENT_COLOR)
    start = 0
    for plan in res.folds[1:]:
        start += len(res.folds[plan.fold - 1].period_index)
        for ax in (ax1, ax2):
            ax.axvline(agent.index[start], color="grey", ls=":", lw=1)
    ax1.set_ylabel("OOS equity (net, 1x costs)")
    ax1.set_title("Stitched out-of-sample equity: agent vs baselines (dotted: fold starts)")
    ax1.legend(loc="upper left", fontsize=8, ncol=3)
    ax2.set_ylabel("drawdown")
    ax1.grid(alpha=0.3)
    ax2.grid(alpha=0.3)
    return _save(fig, out_dir, "equity_drawdown.png")


def _fold_plot(a: Assessment, out_dir: Path) -> str:
    plt = _plt()
    table = a.fold_sharpe
    fig, ax = plt.subplots(figsize=(10, 4))
    n_cols = table.shape[1]
    width = 0.8 / max(n_cols, 1)
    x = np.arange(len(table.index))
    for k, col in enumerate(table.columns):
        color = _AGENT_COLOR if col == "agent" else None
        ax.bar(
            x + (k - (n_cols - 1) / 2) * width,
            table[col].fillna(0.0),
            width,
            label=col,
            color=color,
        )
    ax.set_xticks(x, table.index)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel("OOS Sharpe (annualised)" if a.result.periods_per_year else "OOS Sharpe")
    ax.set_title("Per-fold out-of-sample Sharpe (1x costs)")
    ax.legend(fontsize=8, ncol=3)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, out_dir, "folds.png")


def _cost_plot(a: Assessment, out_dir: Path) -> str:
    plt = _plt()
    cols = [c for c in a.costs.columns if c.startswith("sharpe@")]
    fig, ax = plt.subplots(figsize=(10, 4))
    x = np.arange(len(a.costs.index))
    width = 0.8 / len(cols)
    for k, col in enumerate(cols):
        ax.bar(x + (k - (len(cols) - 1) / 2) * width, a.costs[col].fillna(0.0), width, label=col)
    ax.set_xticks(x, a.costs.index)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_title("Cost stress: OOS Sharpe at each cost multiplier")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, out_dir, "costs.png")


def _pbo_plot(a: Assessment, out_dir: Path) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4))
    if a.pbo is not None:
        logits = a.pbo.logits
        ax.hist(logits, bins=min(40, max(5, int(np.unique(logits).size))), color="#1f77b4")
        ax.axvline(0, color="black", lw=1)
        ax.set_title(
            f"CSCV logits of the in-sample best trial (PBO = share < 0, ties apart: {a.pbo.pbo:.2f}, "
            f"{a.pbo.n_combinations} combinations, {a.pbo.n_trials} trials)"
        )
        ax.set_xlabel("logit of the OOS rank")
    else:
        ax.text(0.5, 0.5, f"PBO not computed:\n{a.pbo_reason}", ha="center", va="center", wrap=True)
        ax.set_axis_off()
    return _save(fig, out_dir, "pbo_logits.png")


def _seed_plot(a: Assessment, out_dir: Path) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 3.5))
    labels = list(a.seed_sharpes)
    values = [a.seed_sharpes[k] for k in labels]
    ax.scatter(values, np.zeros(len(values)), s=60, zorder=3, label="trial configurations")
    for lab, v in zip(labels, values, strict=True):
        ax.annotate(lab, (v, 0), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8)
    if a.seeds is not None:
        ax.errorbar(
            [a.seeds.iqm],
            [-0.5],
            xerr=[[a.seeds.iqm - a.seeds.ci_low], [a.seeds.ci_high - a.seeds.iqm]],
            fmt="s",
            color="black",
            capsize=4,
            label="IQM, 95% bootstrap CI",
        )
        ax.axvline(a.seeds.median, color="grey", ls="--", lw=1, label="median")
    if a.placebo is not None:
        ax.axvline(a.placebo.best, color="#9467bd", ls=":", lw=1.5, label="placebo best")
    agent = a.performance.loc["agent", "sharpe"]
    ax.axvline(agent, color=_AGENT_COLOR, lw=1.5, label="selected agent")
    ax.set_ylim(-1, 1)
    ax.set_yticks([])
    ax.set_xlabel("stitched OOS Sharpe" + (" (annualised)" if a.result.periods_per_year else ""))
    ax.set_title("Seed dispersion: every trial configuration, the selected agent, the placebo")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, out_dir, "seeds.png")


def _shortfall_plot(a: Assessment, out_dir: Path) -> str | None:
    """Distribution of per-episode implementation shortfall (execution results only)."""
    if a.result.domain != "execution":
        return None
    plt = _plt()
    one = cost_label(1.0)
    fig, ax = plt.subplots(figsize=(10, 4))
    series = {"agent": a.result.agent_returns[one]}
    series.update({n: per[one] for n, per in a.result.baseline_returns.items()})
    data = [-1e4 * s.to_numpy() for s in series.values()]  # returns are -shortfall / 1e4
    ax.boxplot(data, tick_labels=list(series), showmeans=True)
    ax.set_ylabel("implementation shortfall (bps, positive = cost)")
    ax.set_title("Shortfall distribution on held-out episodes (1x costs)")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, out_dir, "shortfall.png")


# --------------------------------------------------------------------------- text


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float | np.floating):
        return "n/a" if not math.isfinite(float(v)) else f"{float(v):.{digits}f}"
    return str(v)


def _check_rows(a: Assessment) -> list[list[str]]:
    return [
        [c.name, c.status, _fmt(c.value), c.threshold, c.detail, "yes" if c.required else "no"]
        for c in a.verdict.checks
    ]


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(x).replace("|", "/") for x in r) + " |" for r in rows]
    return "\n".join(lines)


def _frame_rows(df: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    header = [df.index.name or ""] + [str(c) for c in df.columns]
    rows = [
        [str(i)] + [_fmt(v) for v in row] for i, row in zip(df.index, df.to_numpy(), strict=True)
    ]
    return header, rows


def _html_table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f"<td class='{html.escape(c.lower())}'>{html.escape(c)}</td>" for c in r)
        + "</tr>"
        for r in rows
    )
    return f"<table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _summary(a: Assessment) -> dict[str, Any]:
    res, cfg = a.result, a.result.config
    out: dict[str, Any] = {
        "verdict": {
            "passes": a.verdict.passes,
            "failed": a.verdict.failed,
            "status": a.verdict.status,
            "headline": a.verdict.headline,
        },
        "checks": [
            {
                "name": c.name,
                "status": c.status,
                "value": c.value,
                "threshold": c.threshold,
                "detail": c.detail,
                "required": c.required,
            }
            for c in a.verdict.checks
        ],
        "config": cfg.to_json(),
        # what the agents trained on and what the held-out blocks and baselines ran on (each
        # fold's replay windows, if any, are in "folds")
        "trained_on": dict(cfg.env_kwargs),
        "tested_on": cfg.held_out_kwargs,
        "folds": [{"fold": p.fold, **dict(p.describe)} for p in res.folds],
        "selected": {
            str(f): {"seed": o.job.seed, "hp_index": o.job.hp_index}
            for f, o in res.selected.items()
        },
        "dsr": {k: v for k, v in a.dsr.items()},
        "pbo": None
        if a.pbo is None
        else {
            "pbo": a.pbo.pbo,
            "n_splits": a.pbo.n_splits,
            "n_trials": a.pbo.n_trials,
            "degradation_slope": a.pbo.degradation_slope,
            "prob_oos_loss": a.pbo.prob_oos_loss,
        },
        "pbo_reason": a.pbo_reason,
        "performance": a.performance.to_dict(orient="index"),
        "costs": a.costs.to_dict(orient="index"),
        "fold_sharpe": a.fold_sharpe.to_dict(orient="index"),
        "seed_sharpes": a.seed_sharpes,
        "seed_dispersion": None if a.seeds is None else a.seeds.__dict__,
        "placebo": None
        if a.placebo is None
        else {
            "best": a.placebo.best,
            "best_trial": a.placebo.best_label,
            "sharpes": dict(a.placebo.sharpes),
            "describe": a.placebo.describe,
            "data_seeds": [r.env_kwargs.get("data_seed") for r in a.placebo.runs],
            "blind": [r.blind for r in a.placebo.runs],
            "env_kwargs": {k: v for k, v in a.placebo.env_kwargs.items() if k != "costs_bps"},
        },
        "survivorship": None
        if a.survivorship is None
        else {
            "data": a.survivorship.data.__dict__,
            "flagged": a.survivorship.flagged,
            "message": a.survivorship.message,
            "table": a.survivorship.table().to_dict(orient="index"),
        },
        "baseline": a.baseline_name,
        "ledger": res.ledger_path,
    }
    return _json_safe(out)


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_report(assessment: Assessment, out_dir: str | os.PathLike[str]) -> Report:
    """Write plots, ``index.html``, ``report.md`` and ``results.json`` into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    a = assessment
    images = [
        _equity_plot(a, out),
        _fold_plot(a, out),
        _cost_plot(a, out),
        _pbo_plot(a, out),
        _seed_plot(a, out),
    ]
    shortfall = _shortfall_plot(a, out)
    if shortfall:
        images.append(shortfall)
    summary = _summary(a)
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    (out / "results.json").write_text(
        json.dumps({**summary, "generated": generated}, indent=2, sort_keys=True) + "\n"
    )

    res, cfg, v = a.result, a.result.config, a.verdict
    check_header = ["check", "status", "value", "threshold", "detail", "gates verdict"]
    perf_h, perf_r = _frame_rows(a.performance.rename_axis("policy"))
    cost_h, cost_r = _frame_rows(a.costs.rename_axis("policy"))
    fold_h = ["fold", "train", "validation", "test (OOS)", "selected trial"]
    fold_r = [
        [
            str(p.fold),
            str(p.describe.get("train")),
            str(p.describe.get("validation")),
            str(p.describe.get("test")),
            res.config_label(res.selected[p.fold].job.hp_index, res.selected[p.fold].job.seed),
        ]
        for p in res.folds
    ]
    dsr = a.dsr
    stats_rows = [
        [
            "DSR",
            _fmt(dsr.get("value"))
            if dsr.get("value") is not None
            else f"n/a ({dsr.get('reason')})",
        ],
        ["trials N (every trial on this env and data)", _fmt(dsr.get("n_trials"))],
        ["ledger", ledger_words(dsr)],
        ["V[SR] across trials (per period)", _fmt(dsr.get("sr_variance"), 6)],
        ["E[max SR] under the null (per period)", _fmt(dsr.get("expected_max_sr"), 4)],
        ["agent SR (per period)", _fmt(dsr.get("sr"), 4)],
        ["min track record vs E[max SR] (periods)", _fmt(dsr.get("min_track_record"), 0)],
        [
            "PBO (ties not counted as overfit)",
            _fmt(a.pbo.pbo) if a.pbo is not None else f"n/a ({a.pbo_reason})",
        ],
        [
            "P(OOS loss) of the IS-best trial",
            _fmt(a.pbo.prob_oos_loss) if a.pbo is not None else "n/a",
        ],
        [
            "performance degradation slope",
            _fmt(a.pbo.degradation_slope) if a.pbo is not None else "n/a",
        ],
    ]
    if a.seeds is not None:
        s = a.seeds
        stats_rows += [
            ["seed IQM [95% CI]", f"{s.iqm:.3f} [{s.ci_low:.3f}, {s.ci_high:.3f}]"],
            ["best vs median seed", f"{s.best:.3f} vs {s.median:.3f} (+{s.best_minus_median:.3f})"],
        ]
    if a.placebo is not None:
        stats_rows.append(
            [f"best {a.placebo.describe}", f"{a.placebo.best:.3f} ({a.placebo.best_label})"]
        )
    surv_md = surv_html = ""
    if a.survivorship is not None:
        sh, sr_rows = _frame_rows(a.survivorship.table())
        surv_md = (
            f"\n## Survivorship\n\n{a.survivorship.data.message}. {a.survivorship.message}.\n\n"
            + _md_table(sh, sr_rows)
            + "\n"
        )
        surv_html = (
            f"<h2>Survivorship</h2><p>{html.escape(a.survivorship.data.message)}. "
            f"{html.escape(a.survivorship.message)}.</p>" + _html_table(sh, sr_rows)
        )
    status = {"PASS": "PASSES", "FAIL": "FAILS"}.get(v.status, v.status)
    title = f"Walk-forward evaluation: {cfg.algo} on {cfg.env_id}"
    setup = (
        f"{cfg.n_folds} folds x {len(cfg.seeds)} seeds x {len(cfg.grid)} hyper-parameter set(s), "
        f"{cfg.timesteps} timesteps per trial, selection on the last {cfg.validation_fraction:.0%} "
        f"of each training span; baselines on the same OOS blocks; costs x{', x'.join(f'{m:g}' for m in cfg.cost_multipliers)}"
    )
    if cfg.test_env_kwargs is not None:
        setup += "; " + trained_tested(cfg)
    md = [
        f"# {title}",
        "",
        f"**Verdict: {status}** - {v.headline}",
        "",
        setup + ".",
        "",
        "## Checks",
        "",
        _md_table(check_header, _check_rows(a)),
        "",
        "## Selection statistics",
        "",
        _md_table(["statistic", "value"], stats_rows),
        "",
        "## Out-of-sample performance (1x costs)",
        "",
        _md_table(perf_h, perf_r),
        "",
        "## Cost stress",
        "",
        _md_table(cost_h, cost_r),
        "",
        "## Folds",
        "",
        _md_table(fold_h, fold_r),
        surv_md,
        "## Plots",
        "",
        *[f"![{img}]({img})" for img in images],
        "",
        f"_generated {generated}; ledger {res.ledger_path}_",
        "",
    ]
    (out / "report.md").write_text("\n".join(md))

    css = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:14px}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
        "td.fail{background:#fdd;font-weight:bold}td.pass{background:#dfd}td.warn{background:#ffd}"
        ".verdict{font-size:22px;padding:12px;border-radius:6px}"
        ".verdict.pass{background:#dfd;border:2px solid #393}.verdict.fail{background:#fdd;border:2px solid #c33}"
        "img{max-width:100%;display:block;margin:1em 0}"
    )
    # sets data-images-loaded on <body> once every image has decoded (checked by the browser test)
    script = (
        "<script>function chk(){var im=[].slice.call(document.images);"
        "var ok=im.length>0&&im.every(function(i){return i.complete&&i.naturalWidth>0});"
        "document.body.setAttribute('data-images-loaded',ok?'yes':'no');"
        "document.body.setAttribute('data-image-count',String(im.length));}"
        "window.addEventListener('load',chk);</script>"
    )
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f"<div id='verdict' class='verdict {'pass' if v.passes else 'fail'}'><b>Verdict: {status}</b> - "
        f"{html.escape(v.headline)}</div>",
        f"<p>{html.escape(setup)}.</p>",
        "<h2>Checks</h2>",
        _html_table(check_header, _check_rows(a), "checks"),
        "<h2>Selection statistics</h2>",
        _html_table(["statistic", "value"], stats_rows),
        "<h2>Out-of-sample performance (1x costs)</h2>",
        _html_table(perf_h, perf_r),
        "<h2>Cost stress</h2>",
        _html_table(cost_h, cost_r),
        "<h2>Folds</h2>",
        _html_table(fold_h, fold_r),
        surv_html,
        "<h2>Plots</h2>",
        *[f"<img src='{html.escape(img)}' alt='{html.escape(img)}'>" for img in images],
        f"<p><small>generated {html.escape(generated)}; ledger {html.escape(str(res.ledger_path))}</small></p>",
    ]
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{css}</style>{script}</head><body>{''.join(body)}</body></html>\n"
    )
    (out / "index.html").write_text(page)
    return Report(out, a, tuple(images))


# --------------------------------------------------------------------------- one call


def evaluate_agent(
    env_id: str = "trendgym/Portfolio-v0",
    algo: str = "ppo",
    *,
    out_dir: str | os.PathLike[str] = "report",
    n_folds: int = 2,
    seeds: tuple[int, ...] = (0, 1),
    timesteps: int = 2048,
    env_kwargs: Mapping[str, Any] | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    grid: tuple[Mapping[str, Any], ...] = ({},),
    test_env_kwargs: Mapping[str, Any] | None = None,
    ledger: Ledger | str | os.PathLike[str] | None = DEFAULT_LEDGER_PATH,
    workers: int | None = None,
    ray_address: str | None = None,
    placebo: bool = True,
    survivorship: bool = True,
    progress: bool = True,
    resume: bool = False,
    announce: Callable[[str], Any] | None = None,
    **config_kwargs: Any,
) -> Report:
    """Walk-forward evaluate an SB3 agent against the baselines and write the report.

    Runs the search (folds x seeds x grid), the same search on the placebo market, the
    survivorship check (portfolio), computes the verdict and writes `out_dir`. Extra keywords
    go to :class:`WalkForwardConfig` (e.g. ``extractor``, ``purge``, ``baseline``,
    ``episodes``, ``universe``). `test_env_kwargs` (execution): the env kwargs of the
    validation and OOS episodes and their baselines instead of `env_kwargs` (say, a replayed
    tape, cut into disjoint windows per block). `announce` receives the expected wall time
    and, with test kwargs or a replayed tape, what is trained and tested on, before it starts.

    SIGINT or SIGTERM stops it with :class:`EvaluationInterrupted` (a KeyboardInterrupt): the
    finished trials are in the ledger, the ones in flight are dropped. ``resume=True`` (same
    arguments) continues from the ledger's finished trials and ends with the report an
    uninterrupted run writes; ``out_dir/evaluation.json`` records what runs there, so resuming
    another evaluation, or rerunning an unfinished one without ``resume``, is refused.
    """
    started = time.perf_counter()
    config = WalkForwardConfig(
        env_id=env_id,
        algo=algo,
        n_folds=n_folds,
        seeds=tuple(seeds),
        timesteps=timesteps,
        env_kwargs=dict(env_kwargs or {}),
        model_kwargs=dict(model_kwargs or {}),
        grid=tuple(grid),
        test_env_kwargs=None if test_env_kwargs is None else dict(test_env_kwargs),
        **config_kwargs,
    )
    # an env id without a domain, or test kwargs its domain has no use for, are refused
    # before anything is written
    refuse_test_env_kwargs(config.env_id, config.test_env_kwargs, "test_env_kwargs")
    if isinstance(ledger, str | os.PathLike):
        ledger = Ledger(ledger)
    if resume and ledger is None:
        raise ValueError("resume needs the ledger that holds the finished trials (ledger=None)")
    state = EvaluationState.of(out_dir, config, ledger, placebo, survivorship)
    state.check(resume)
    if announce is not None:
        eta = expected_seconds(config, workers, placebo)
        announce(
            f"expected wall time about {eta / 60:.0f} min: {config.n_folds} folds x "
            f"{len(config.seeds)} seeds x {len(config.grid)} grid x {config.timesteps} steps"
            + (", placebo searches included" if placebo else "")
            + (" (finished trials reused from the ledger)" if resume else "")
        )
        for line in held_out_plan(config):
            announce(line)
    state.write("running")
    searches = dict(workers=workers, ray_address=ray_address, progress=progress, resume=resume)
    with stop_on_signals():  # later signals wait while the interruption is recorded
        try:
            result = run_walk_forward(config, ledger=ledger, **searches)
            placebo_result = (
                placebo_search(config, real=result, ledger=ledger, **searches) if placebo else None
            )
            surv = None
            if survivorship and result.domain == "portfolio":
                first = result.folds[0].tests[cost_label(1.0)].env_kwargs
                last = result.folds[-1].tests[cost_label(1.0)].env_kwargs
                surv = survivorship_check(config.env_kwargs, start=first["start"], end=last["end"])
            assessment = assess(result, ledger=ledger, placebo=placebo_result, survivorship=surv)
            report = write_report(assessment, out_dir)
        except KeyboardInterrupt as stop:
            raise _interrupted(stop, state, config, ledger, placebo) from None
        except BaseException:
            # a failure is no trap: a plain rerun may start afresh (say, with fixed arguments)
            state.write("failed")
            raise
    state.write("done")
    return Report(report.out_dir, assessment, report.images, time.perf_counter() - started)


def trained_tested(config: WalkForwardConfig) -> str:
    """One line: the env kwargs trials train on and those of the held-out blocks."""
    return (
        f"trained on env_kwargs {json.dumps(dict(config.env_kwargs))}; validation, OOS and "
        f"baselines on test_env_kwargs {json.dumps(config.held_out_kwargs)}"
    )


def held_out_plan(config: WalkForwardConfig) -> list[str]:
    """What the printed plan says about the held-out blocks: the train/test kwargs when they
    differ, and each block's window of a replayed tape (nothing for the default search)."""
    replays = "replay" in config.held_out_kwargs
    if config.test_env_kwargs is None and not replays:
        return []
    lines = [trained_tested(config)] if config.test_env_kwargs is not None else []
    if replays:
        plans = domain_for(config.env_id).plan(config)
        lo, hi = plans[0].describe["validation_window"]
        lines.append(f"validation (every fold, its own seeds): tape window [{lo:.6g}, {hi:.6g}] s")
        lines += [f"fold {p.fold} OOS: {p.describe['test']}" for p in plans]
    return lines


def _interrupted(
    stop: KeyboardInterrupt,
    state: EvaluationState,
    config: WalkForwardConfig,
    ledger: Ledger | None,
    placebo: bool,
) -> EvaluationInterrupted:
    """Record the interruption in the report folder and say how to continue, in one line."""
    import signal

    signum = int(getattr(stop, "signum", signal.SIGINT))
    searches = [config, *(domain_for(config.env_id).placebos(config) if placebo else [])]
    n = finished_count(ledger, searches)
    state.write("interrupted", finished_trials=n)
    kept = (
        f"{n} finished trial(s) are in the ledger {str(ledger.path)!r}"
        if ledger is not None
        else "no ledger, so nothing was kept"
    )
    return EvaluationInterrupted(
        signum,
        f"{signal.Signals(signum).name}: evaluation stopped; {kept} and the trials in flight "
        f"were dropped; continue with the same command plus --resume (resume=True)",
    )
