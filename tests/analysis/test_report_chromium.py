"""The report opened in headless Chromium (Debian `chromium`) renders its plots."""

from __future__ import annotations

import io
import subprocess

import numpy as np
import pytest
from rich.console import Console

from analysis.api import analyze_run
from analysis.synthetic import RunSpec, write_run
from tests.support import require_binary

pytestmark = pytest.mark.chromium


def png_pixels(path) -> np.ndarray:
    # Pillow comes with matplotlib
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_report_renders_in_headless_chromium(tmp_path):
    chromium = require_binary("chromium", "chromium")
    run = write_run(tmp_path / "run", RunSpec(records=6000, seed=31))
    assert analyze_run(run, console=Console(file=io.StringIO())) == 0
    shot = tmp_path / "shot.png"
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
           "--window-size=1400,3000", "--hide-scrollbars",
           (run / "report.html").resolve().as_uri()]
    res = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert shot.exists(), res.stderr[-2000:]
    px = png_pixels(shot)
    assert px.shape[:2] == (3000, 1400)
    colours = np.unique(px.reshape(-1, 3)[::7], axis=0)
    assert len(colours) > 200, f"only {len(colours)} colours: blank or unstyled page"
    # the plots are drawn: the provider flow's red and the mode shading both appear
    flat = px.reshape(-1, 3).astype(int)
    red = np.all(np.abs(flat - [0xC0, 0x39, 0x2B]) < 40, axis=1).sum()
    shade = np.all(np.abs(flat - [0xE4, 0xEC, 0xF8]) < 12, axis=1).sum()
    assert red > 500 and shade > 5000, (red, shade)
    # and the verdict banner (green) is at the top
    top = px[:300].reshape(-1, 3).astype(int)
    assert np.all(np.abs(top - [0x1E, 0x84, 0x49]) < 20, axis=1).sum() > 5000
