"""The rich console every command prints its tables to, and the one error line every command
prints its errors with.

Rich sizes its output to the terminal; when the output is not a terminal (piped into a file,
a CI log) it falls back to 80 columns and the tables cut their cells short. A console writing
anywhere but a terminal is therefore made `PIPED_WIDTH` columns wide, unless `COLUMNS` says
otherwise (rich honours `COLUMNS` itself) or the caller gives a width.

Errors: `execbench <command>: error: <message>` on stderr, the form argparse itself uses for a
bad option (`execbench serve: error: argument --port: ...`), so a usage error and an error found
later read alike. `execbench.cli.main` records the command it runs (`current_command`), for
code shared by several commands (the analysis, which `report`, `compare`, `analyze-log` and
`demo` all call).
"""

from __future__ import annotations

import os
import sys

PIPED_WIDTH = 160

current_command: str | None = None


def make_console(**kwargs):
    from rich.console import Console

    console = Console(**kwargs)
    columns = os.environ.get("COLUMNS", "")
    if kwargs.get("width") is None and not columns.isdigit() and not console.is_terminal:
        console = Console(**{**kwargs, "width": PIPED_WIDTH})
    return console


def error_prefix(command: str | None = None) -> str:
    """`execbench <command>: error:` (the command running when none is given)."""
    command = command or current_command
    return f"execbench {command}: error:" if command else "execbench: error:"


def fail(command: str | None, message: str, status: int = 2) -> int:
    """Print `execbench <command>: error: <message>` on stderr; return `status` (2: the input
    or the environment is unusable, nothing was done)."""
    print(f"{error_prefix(command)} {message}", file=sys.stderr, flush=True)
    return status
