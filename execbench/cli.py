"""The `execbench` console script: assembles the commands each package registers.

Locust monkey-patches the whole process with gevent as soon as it is imported, so
no command module may import it at module level: each package's `commands` module
only declares arguments, and imports its heavy code inside the handler it returns.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from execbench import console

# Each module exposes `register(subparsers)`; the order is the order of `--help`.
COMMAND_MODULES = (
    "service.commands",
    "gateway.commands",
    "execbench.commands",
    "analysis.commands",
    "dashboards.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="execbench",
        description="Load-test, observe and judge the provider-skip optimization.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # a package that has no commands yet
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    console.current_command = args.command
    try:
        result = args.handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
