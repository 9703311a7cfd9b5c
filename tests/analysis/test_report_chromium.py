"""The report opened in headless Chromium (Debian `chromium`) renders its plots."""

from __future__ import annotations

import io
import subprocess
import zlib

import numpy as np
import pytest
from rich.console import Console

from analysis.api import analyze_run
from analysis.synthetic import RunSpec, write_run
from tests.support import require_binary

pytestmark = pytest.mark.chromium


def png_pixels(path) -> np.ndarray:
    """Decode an 8-bit RGB/RGBA, non-interlaced PNG (what Chromium writes) with zlib alone."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", None
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        ctype = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if ctype == b"IHDR":
            width, height = int.from_bytes(body[:4], "big"), int.from_bytes(body[4:8], "big")
            depth, color, interlace = body[8], body[9], body[12]
            assert depth == 8 and color in (2, 6) and interlace == 0
            channels = 3 if color == 2 else 4
        elif ctype == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int32)
        if f == 0:
            cur = line
        elif f == 2:
            cur = (line + prev) & 0xFF
        else:  # sub, average, paeth depend on the left pixel: decode bytewise
            cur = np.zeros(stride, dtype=np.int32)
            for i in range(stride):
                a = cur[i - channels] if i >= channels else 0
                b = prev[i]
                c = prev[i - channels] if i >= channels else 0
                if f == 1:
                    pred = a
                elif f == 3:
                    pred = (a + b) // 2
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[i] = (line[i] + pred) & 0xFF
        out[y] = cur
        prev = cur
    return out.reshape(height, width, channels)[:, :, :3]


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
