"""A metrics plot with nothing to show says so in the figure: an all-zero run drew a blank chart."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from m1bench.harness.cli import main as cli_main
from tests.support.crafted_runs import make_run, rates

NOTE_RGB = np.array([0xB0, 0x30, 0x30])


def metrics_png(tmp_path, correct):
    run = make_run(tmp_path / "run", {"aime2024": rates(4, correct, 2)})
    with pytest.raises(SystemExit) as e:
        cli_main(["report", str(run), "-o", str(tmp_path / "out")])
    assert e.value.code == 0
    return Image.open(tmp_path / "out" / "plots" / "metrics.png")


def note_pixels(img) -> int:
    rgb = np.asarray(img.convert("RGB")).astype(int)
    return int((np.abs(rgb - NOTE_RGB).sum(axis=-1) < 40).sum())


def test_all_zero_metrics_plot_says_why(tmp_path):
    img = metrics_png(tmp_path, [0, 0, 0, 0])
    assert img.text["Description"] == "Every metric is 0.0%: no sample was graded correct."
    assert note_pixels(img) > 200  # the note is drawn in the figure, not only in the metadata


def test_a_plot_with_values_has_no_note(tmp_path):
    img = metrics_png(tmp_path, [2, 1, 0, 0])
    assert "Description" not in img.text and note_pixels(img) == 0
