"""The live view's progress: planned durations as they are, not rounded to whole seconds."""

from __future__ import annotations

from loadtests.live import secs


def test_planned_durations_keep_their_tenths():
    assert secs(7.5) == "7.5"  # a 30 s warmup at --duration-scale 0.25, once shown as "/8 s"
    assert secs(30.0) == "30" and secs(0.1 * 30) == "3" and secs(187.5) == "187.5"
