"""The rich console every command prints its tables to.

Rich sizes its output to the terminal; when the output is not a terminal (piped into a file,
a CI log) it falls back to 80 columns and the tables cut their cells short. A console writing
anywhere but a terminal is therefore made `PIPED_WIDTH` columns wide, unless `COLUMNS` says
otherwise (rich honours `COLUMNS` itself) or the caller gives a width.
"""

from __future__ import annotations

import os

PIPED_WIDTH = 160


def make_console(**kwargs):
    from rich.console import Console

    console = Console(**kwargs)
    columns = os.environ.get("COLUMNS", "")
    if kwargs.get("width") is None and not columns.isdigit() and not console.is_terminal:
        console = Console(**{**kwargs, "width": PIPED_WIDTH})
    return console
