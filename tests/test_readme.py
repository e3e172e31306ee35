"""Every ```python block of README.md runs as written, each in its own fresh interpreter.

The blocks are run as the user would paste them; the only changes are the budgets below
(each must match its block exactly once, so a README edit that drops one fails here), and
the files a block reads as "your own data" are written first as stand-ins. A block that
cannot run here says why in its fence: ```python no-run: <reason>.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^```python(?P<info>[^\n]*)\n(?P<code>.*?)^```", re.M | re.S)
TINY = {"n_steps": 64, "batch_size": 32, "n_epochs": 1, "policy_kwargs": {"net_arch": [8]}}

# text in a block -> what runs instead: training and evaluation budgets only
BUDGETS = {
    'algo="ppo", timesteps=30_000)': f'algo="ppo", timesteps=128, model_kwargs={TINY!r})',
    "seeds=(0, 1), timesteps=2048)": (
        f"seeds=(0, 1), timesteps=128, model_kwargs={TINY!r}, extractor=None, train_window=120,"
        ' env_kwargs={"n_years": 6, "n_assets": 4}, placebo_markets=1)'
    ),
    'PPO("MlpPolicy", venv).learn(100_000)': (
        'PPO("MlpPolicy", venv, n_steps=8, batch_size=256, n_epochs=1).learn(512)'
    ),
}


def blocks() -> list[tuple[str, str, str]]:
    """(id, fence info, code) of every python block, the id naming the section it is in."""
    text = README.read_text()
    out = []
    for k, m in enumerate(FENCE.finditer(text)):
        prose = re.sub(r"^```.*?^```", "", text[: m.start()], flags=re.M | re.S)
        headings = re.findall(r"^#+ (.+)$", prose, re.M)
        section = re.sub(r"\W+", "-", headings[-1] if headings else "top").strip("-").lower()
        out.append((f"{k}-{section[:40]}", m.group("info").strip(), m.group("code")))
    return out


BLOCKS = blocks()


def own_data(cwd: Path) -> None:
    """Stand-ins for the files the own-data block reads: three assets, one of which (XYZ)
    stops trading, a signal on the same dates and assets, and the prices in long format."""
    dates = pd.bdate_range("2015-01-01", periods=600, name="date")
    rng = np.random.default_rng(0)
    walk = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (600, 3)), axis=0))
    prices = pd.DataFrame(walk, index=dates, columns=["ES", "BTC", "XYZ"])
    prices.loc[dates[450] :, "XYZ"] = np.nan
    prices.to_parquet(cwd / "closes.parquet")
    prices.pct_change(20).to_parquet(cwd / "sentiment.parquet")
    long = prices.stack().rename("price").rename_axis(["date", "asset"]).reset_index()
    long.to_csv(cwd / "closes_long.csv", index=False)


def test_every_budget_change_matches_one_block_once():
    runnable = [code for _, info, code in BLOCKS if not info.startswith("no-run")]
    for text in BUDGETS:
        assert sum(code.count(text) for code in runnable) == 1, text


def test_blocks_that_do_not_run_say_why():
    for block_id, info, _ in BLOCKS:
        assert info == "" or re.fullmatch(r"no-run: \S.{10,}", info), (block_id, info)
    assert len([b for b in BLOCKS if not b[1]]) >= 8  # the README's examples run


@pytest.mark.parametrize("block_id,info,code", BLOCKS, ids=[b[0] for b in BLOCKS])
def test_readme_block_runs(block_id, info, code, tmp_path):
    if info.startswith("no-run"):
        pytest.skip(info)
    for text, tiny in BUDGETS.items():
        code = code.replace(text, tiny)
    if "closes.parquet" in code:
        own_data(tmp_path)
    (tmp_path / "block.py").write_text(code)
    done = subprocess.run(
        [sys.executable, "block.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"},
    )
    assert done.returncode == 0, f"{block_id}:\n{code}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr, done.stderr[-3000:]


def test_every_block_compiles():
    """Those that do not run too: a typo in them is caught here."""
    for block_id, _, code in BLOCKS:
        compile(code, block_id, "exec")
