"""report.html in headless Chromium (Debian's `chromium` package): the page loads without console
errors, its tables are there, every embedded plot decodes, and a screenshot shows tables and plots.
Skipped when no chromium binary is installed (CI: `apt-get install -y chromium`)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.support.crafted_runs import crafted_report, rates

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs a headless Chromium: apt-get install -y chromium")

BAR_BLUE = np.array([0x4C, 0x72, 0xB0]) / 255  # the metrics plot's bars (plots.metrics_plot)
TABLE_HEAD = np.array([0xEE, 0xF1, 0xF7]) / 255  # table header background (doc.CSS)


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           "--hide-scrollbars", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=5000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def console_errors(stderr: str) -> list[str]:
    """Page-level problems Chromium logs: console.error / uncaught exceptions, failed loads."""
    return [line for line in stderr.splitlines()
            if ("CONSOLE" in line and ("Uncaught" in line or ":ERROR:" in line or '"error' in line.lower()))
            or "Failed to load resource" in line or "net::ERR_" in line]


def load(page: Path, profile: Path) -> tuple[str, list[str]]:
    r = chromium(profile, "--dump-dom", page.as_uri())
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout, console_errors(r.stderr)


def screenshot(page: Path, profile: Path, out: Path) -> np.ndarray:
    import matplotlib.image as mpimg

    r = chromium(profile, "--window-size=1280,2400", f"--screenshot={out}", page.as_uri())
    assert r.returncode == 0 and out.is_file(), r.stderr[-2000:]
    return mpimg.imread(out)[..., :3]


def share_of(img: np.ndarray, rgb: np.ndarray) -> float:
    return float((np.abs(img - rgb).max(axis=-1) < 6 / 255).mean())


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("html")
    out = crafted_report(tmp, "report", {"aime2024": rates(30, [3] * 20 + [1] * 10, 4),
                                         "livecodebench": rates(8, [1, 0, 1, 1, 0, 1, 1, 1], 1)})
    return out / "report.html"


def test_page_is_self_contained(page):
    html = page.read_text()
    assert not re.search(r'(src|href)="(?!data:)', html), "everything is inline: no external resources"
    assert html.count('<img src="data:image/png;base64,') == 3


def test_page_loads_without_errors_and_renders_tables_and_plots(page, tmp_path):
    dom, errors = load(page, tmp_path / "profile")
    assert errors == []
    assert 'data-plots-ok="3"' in dom and 'data-plots-total="3"' in dom  # every plot decoded
    assert 'class="m1-broken"' not in dom  # no plot was replaced by a failure notice
    assert dom.count('<table class="m1-table">') >= 5
    for text in ("Results", "avg@4 (primary)", "Against the paper (Table 2)", "MiniMax-M1-80K", "What makes this comparable"):
        assert text in dom


def test_screenshot_shows_tables_and_plots(page, tmp_path):
    img = screenshot(page, tmp_path / "profile", tmp_path / "shot.png")
    assert img.shape[:2] == (2400, 1280)
    assert img.std() > 0.05  # not a blank page
    assert share_of(img, TABLE_HEAD) > 0.01  # table headers drawn
    assert share_of(img, BAR_BLUE) > 0.01  # the metrics plot's bars drawn (the title rule alone is < 0.1%)


def test_the_checks_catch_a_broken_page(page, tmp_path):
    """The same checks on a page with a script error and an undecodable plot must fail."""
    broken = tmp_path / "broken.html"
    html = page.read_text()
    html = re.sub(r'src="data:image/png;base64,[^"]+"', 'src="data:image/png;base64,AAAA"', html)
    broken.write_text(html.replace("<script>", "<script>undefinedFunction();</script><script>", 1))
    dom, errors = load(broken, tmp_path / "profile")
    assert any("Uncaught ReferenceError" in e for e in errors)
    assert 'data-plots-ok="0"' in dom and dom.count('class="m1-broken"') == 3
    img = screenshot(broken, tmp_path / "profile", tmp_path / "shot.png")
    assert share_of(img, BAR_BLUE) < 0.002
