"""trendgym.evaluate.report and ``trendgym evaluate``: report folder contents, determinism, CLI."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from trendgym.evaluate.report import write_report
from trendgym.evaluate.verdict import assess
from trendgym.train.cli import build_parser, main

sys.path.insert(0, str(Path(__file__).parent))
from test_verdict import fill_ledger, placebo, synthetic_result  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def synthetic_report(tmp_path: Path, edge: float, name: str = "report"):
    res = synthetic_result(edge=edge, n_trials=4)
    ledger = fill_ledger(res, tmp_path / f"{name}.sqlite")
    return write_report(assess(res, ledger=ledger, placebo=placebo(0.3)), tmp_path / name)


def test_report_folder_has_plots_pages_and_the_verdict(tmp_path):
    report = synthetic_report(tmp_path, edge=0.003)
    out = report.out_dir
    assert set(report.images) == {
        "equity_drawdown.png",
        "folds.png",
        "costs.png",
        "pbo_logits.png",
        "seeds.png",
    }
    for img in report.images:
        assert (out / img).read_bytes()[:8] == PNG_MAGIC
    page = (out / "index.html").read_text()
    md = (out / "report.md").read_text()
    srcs = re.findall(r"<img src='([^']+)'", page)
    assert sorted(srcs) == sorted(report.images)  # relative, and every one exists
    assert all(not s.startswith(("/", "file:")) for s in srcs)
    assert report.passes and "Verdict: PASSES" in page and "Verdict: PASSES" in md
    for check in ("deflated_sharpe", "pbo", "beats_baseline_2x", "placebo", "cost_stress"):
        assert check in page and check in md
    results = json.loads((out / "results.json").read_text())
    assert results["verdict"]["passes"] is True
    assert results["dsr"]["n_trials"] == 4


def test_failing_agent_report_names_the_failed_checks(tmp_path):
    report = synthetic_report(tmp_path, edge=0.0)
    md = (report.out_dir / "report.md").read_text()
    assert not report.passes and "Verdict: FAILS" in md
    for name in report.assessment.verdict.failed:
        assert re.search(rf"\| {name} \| FAIL \|", md)


def test_same_inputs_same_report_except_the_timestamp(tmp_path):
    a = synthetic_report(tmp_path, edge=0.001, name="a")
    b = synthetic_report(tmp_path, edge=0.001, name="b")
    # the ledger is named in the report: the two runs' ledgers differ only by that name
    ja = json.loads((a.out_dir / "results.json").read_text().replace("a.sqlite", "L.sqlite"))
    jb = json.loads((b.out_dir / "results.json").read_text().replace("b.sqlite", "L.sqlite"))
    for j in (ja, jb):
        j.pop("generated")
        j.pop("ledger")
    assert ja == jb
    for img in a.images:
        assert (a.out_dir / img).read_bytes() == (b.out_dir / img).read_bytes(), img


def test_cli_parses_evaluate():
    args = build_parser().parse_args(
        [
            "evaluate",
            "--env",
            "trendgym/Portfolio-v0",
            "--folds",
            "3",
            "--seeds",
            "2",
            "--timesteps",
            "100",
            "--out",
            "r",
            "--env-kwargs",
            '{"preset": "equities"}',
        ]
    )
    assert (args.command, args.folds, args.seeds, args.env_kwargs) == (
        "evaluate",
        3,
        2,
        {"preset": "equities"},
    )
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "--env", "x", "--env-kwargs", "[1]"])


def test_cli_end_to_end_tiny(tmp_path, capsys):
    out = tmp_path / "report"
    code = main(
        [
            "evaluate",
            "--env",
            "trendgym/Portfolio-v0",
            "--folds",
            "2",
            "--seeds",
            "2",
            "--timesteps",
            "128",
            "--out",
            str(out),
            "--ledger",
            str(tmp_path / "l.sqlite"),
            "--workers",
            "0",
            "--no-progress",
            "--extractor",
            "none",
            "--env-kwargs",
            '{"preset": "equities", "n_years": 4, "n_assets": 6, "data_seed": 1}',
            "--model-kwargs",
            '{"n_steps": 64, "batch_size": 64, "n_epochs": 1, "policy_kwargs": {"net_arch": [8]}}',
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "ppo on trendgym/Portfolio-v0" in printed and str(out / "index.html") in printed
    results = json.loads((out / "results.json").read_text())
    # 4 agent trials + 4 placebo trials; placebo ones are a separate experiment
    assert results["dsr"]["n_trials"] == 2
    assert results["placebo"]["env_kwargs"]["preset"] == "random_walk"
    # two placebo markets, each from a data seed other than the test market's
    assert len(results["placebo"]["sharpes"]) == 2
    assert results["placebo"]["data_seeds"] == [2, 3]  # never the test market's seed 1
    assert "expected wall time about" in printed and "wall time" in printed
    assert results["survivorship"] is not None
    assert {c["name"] for c in results["checks"]} >= {
        "deflated_sharpe",
        "selection",
        "beats_baseline_2x",
        "placebo",
        "universe",
    }
    universe = next(c for c in results["checks"] if c["name"] == "universe")
    assert universe["status"] == "pass"  # the equities preset delists names
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--env", "CartPole-v1", "--out", str(tmp_path / "x"), "--workers", "0"])
    assert exit_info.value.code == 2
    assert "no walk-forward domain" in capsys.readouterr().err
