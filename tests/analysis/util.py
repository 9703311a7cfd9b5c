"""Helpers shared by the analysis tests: a quiet console, a run's summary and report section."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
from rich.console import Console


def quiet() -> Console:
    """A console writing into memory, wide enough that no terminal line the tests read wraps."""
    return Console(file=io.StringIO(), width=220)


def summary_of(run: Path) -> dict:
    return orjson.loads((run / "summary.json").read_bytes())


def section_html(run: Path) -> str:
    """The report's "Safety and reliability" section."""
    html = (run / "report.html").read_text()
    start = html.index("<h2>Safety and reliability</h2>")
    return html[start:html.index("<h2>Phases and attribution</h2>")]
