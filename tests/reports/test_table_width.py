"""`m1bench table --format html`: the Table 2 block fits a 1400 px window without horizontal scroll
(it scrolled sideways and hid three columns). Measured in headless Chromium: the block's scrollWidth
against its clientWidth, written into the page's title by a script and read from --dump-dom."""
from __future__ import annotations

import re

import pytest

from m1bench.harness.cli import main as cli_main
from tests.reports.test_report_html import chromium, pytestmark  # noqa: F401  (skip without Chromium)
from tests.support.crafted_runs import crafted_report, rates

MEASURE = ("<script>document.title = [...document.querySelectorAll('.m1-scroll')]"
           ".map(d => d.scrollWidth + '/' + d.clientWidth).join(',');</script></body>")


def test_table2_fits_1400px(tmp_path):
    report = crafted_report(tmp_path, "a", {"aime2024": rates(30, [2] * 26 + [0] * 4, 2),
                                            "livecodebench": rates(10, [1] * 2 + [0] * 8, 1)})
    page = tmp_path / "table.html"
    with pytest.raises(SystemExit) as e:
        cli_main(["table", str(report), "-o", str(page)])
    assert e.value.code == 0
    page.write_text(page.read_text().replace("</body>", MEASURE))
    r = chromium(tmp_path / "profile", "--window-size=1400,1000", "--dump-dom", page.as_uri())
    title = re.search(r"<title>([^<]*)</title>", r.stdout).group(1)
    widths = [tuple(map(int, w.split("/"))) for w in title.split(",")]
    assert widths and all(scroll <= client for scroll, client in widths), widths
