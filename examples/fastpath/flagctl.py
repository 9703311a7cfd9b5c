"""Read or set a flag's defaultVariant in a flagd flag-definition file (stdlib only).

    python examples/fastpath/flagctl.py --file FLAGS.json get fast_path
    python examples/fastpath/flagctl.py --file FLAGS.json set fast_path fast
    python examples/fastpath/flagctl.py --url http://127.0.0.1:9100 get fast_path

`get` prints the file's defaultVariant (what the file says, not what a running service has loaded
yet) or, with `--url`, what the service at that URL evaluates now (its GET /flags/<flag>): the
one to confirm a flip with. `set` rewrites the file atomically and prints the new value. `--file`
defaults to $FASTPATH_FLAGS_FILE. Exit status 0 on success, 1 on an error (message on stderr), 2
on bad usage.

The service imports the same functions, so its `PUT /flags/fast_path` and this tool write the file
the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

SCHEMA = "https://flagd.dev/schema/v0/flags.json"


class FlagFileError(Exception):
    """The file is missing, unreadable, not a flagd definition, or lacks the flag."""


class UnknownVariant(FlagFileError):
    def __init__(self, flag: str, variant: str, variants: list[str]):
        super().__init__(f"{flag}: unknown variant {variant!r} (variants: {', '.join(variants)})")
        self.variants = variants


def definition(flag: str, variants: dict[str, object], default: str) -> dict:
    """A one-flag flagd definition document."""
    return {
        "$schema": SCHEMA,
        "flags": {flag: {"state": "ENABLED", "variants": variants, "defaultVariant": default}},
    }


def read_flags(path: str | os.PathLike) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FlagFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FlagFileError(f"{path}: cannot read a JSON flag definition: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("flags"), dict):
        raise FlagFileError(f"{path}: not a flagd definition (no \"flags\" object)")
    return data


def _flag(data: dict, path: str | os.PathLike, flag: str) -> dict:
    entry = data["flags"].get(flag)
    if not isinstance(entry, dict) or not isinstance(entry.get("variants"), dict):
        raise FlagFileError(f"{path}: no flag {flag!r} with variants")
    return entry


def get_default_variant(path: str | os.PathLike, flag: str) -> str:
    default = _flag(read_flags(path), path, flag).get("defaultVariant")
    if not isinstance(default, str):
        raise FlagFileError(f"{path}: flag {flag!r} has no defaultVariant")
    return default


def variants(path: str | os.PathLike, flag: str) -> list[str]:
    return list(_flag(read_flags(path), path, flag)["variants"])


def evaluated_variant(base_url: str, flag: str, timeout: float = 5.0) -> str:
    """What the service at base_url evaluates now, from its GET /flags/<flag>."""
    url = f"{base_url.rstrip('/')}/flags/{flag}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            variant = json.loads(response.read()).get("variant")
    except (urllib.error.URLError, OSError, ValueError, AttributeError) as exc:
        raise FlagFileError(f"GET {url}: {exc}") from None
    if not isinstance(variant, str):
        raise FlagFileError(f"GET {url}: no \"variant\" in the answer")
    return variant


def write_flags(path: str | os.PathLike, data: dict) -> None:
    """Replace the file atomically: a reader sees the old document or the new one, never half.

    flagd's file watcher reloads only when the file's mtime grows, and file timestamps are
    coarse (a few ms), so two writes close together could share one mtime and the second would
    never load: the new file's mtime is forced past the old one's.
    """
    path = Path(path)
    previous = path.stat() if path.exists() else None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        if previous is not None:
            os.chmod(tmp, previous.st_mode & 0o7777)
            written = os.stat(tmp).st_mtime_ns
            if written <= previous.st_mtime_ns:
                bumped = previous.st_mtime_ns + 1_000_000
                os.utime(tmp, ns=(bumped, bumped))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def set_default_variant(path: str | os.PathLike, flag: str, variant: str) -> None:
    data = read_flags(path)
    entry = _flag(data, path, flag)
    if variant not in entry["variants"]:
        raise UnknownVariant(flag, variant, list(entry["variants"]))
    entry["defaultVariant"] = variant
    write_flags(path, data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--file",
        default=os.environ.get("FASTPATH_FLAGS_FILE"),
        help="the flagd flag-definition JSON file (default: $FASTPATH_FLAGS_FILE)",
    )
    parser.add_argument(
        "--url", help="get: ask the service at this base URL what it evaluates, not the file"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    get = commands.add_parser("get", help="print the flag's defaultVariant (or, with --url, "
                              "the variant the service evaluates)")
    get.add_argument("flag")
    put = commands.add_parser("set", help="set the flag's defaultVariant")
    put.add_argument("flag")
    put.add_argument("variant")
    args = parser.parse_args(argv)
    if args.command == "get" and args.url:
        try:
            print(evaluated_variant(args.url, args.flag))
        except FlagFileError as exc:
            print(f"flagctl: {exc}", file=sys.stderr)
            return 1
        return 0
    if not args.file:
        parser.error("--file is required (or set FASTPATH_FLAGS_FILE)")
    try:
        if args.command == "set":
            set_default_variant(args.file, args.flag, args.variant)
            print(args.variant)
        else:
            print(get_default_variant(args.file, args.flag))
    except FlagFileError as exc:
        print(f"flagctl: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
