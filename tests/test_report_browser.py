"""The HTML report opens in a real browser: headless chromium loads every image and shows the verdict.

Run with ``pytest -m browser tests/test_report_browser.py`` (needs Debian's ``chromium``).
The screenshot is kept at ``<tmp>/report.png`` (path printed) so a human can look at it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_report import synthetic_report  # noqa: E402

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            "chromium is not installed: apt-get install -y chromium (make test-browser does)"
        )
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
    ]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


def test_report_renders_with_every_image_and_the_verdict(tmp_path):
    report = synthetic_report(tmp_path, edge=0.003)
    url = report.index_html.resolve().as_uri()

    dom = chromium(tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body, dom.stdout[:500]
    assert 'data-images-loaded="yes"' in body.group(0), body.group(0)
    assert f'data-image-count="{len(report.images)}"' in body.group(0)
    verdict = re.search(r"<div id=\"verdict\"[^>]*>(.*?)</div>", dom.stdout, re.S)
    assert verdict and "Verdict: PASSES" in verdict.group(1)

    png = tmp_path / "report.png"
    shot = chromium(tmp_path, f"--screenshot={png}", "--window-size=1200,3000", url)
    assert shot.returncode == 0 and png.is_file(), shot.stderr[-2000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000
    print(f"screenshot: {png}")


def test_a_missing_image_is_detected(tmp_path):
    report = synthetic_report(tmp_path, edge=0.003)
    (report.out_dir / report.images[0]).unlink()
    dom = chromium(tmp_path, "--dump-dom", report.index_html.resolve().as_uri())
    assert 'data-images-loaded="no"' in dom.stdout
