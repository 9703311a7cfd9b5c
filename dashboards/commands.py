"""CLI: `execbench dashboards build [--check]`, `dashboards push`, `annotate RUN_DIR`.

Only argument declarations here; each handler imports its heavy code when it runs.
"""

from __future__ import annotations

import argparse
import os
import sys

TOKEN_ENV = "GRAFANA_TOKEN"
URL_ENV = "GRAFANA_URL"


def register(subparsers) -> None:
    dash = subparsers.add_parser(
        "dashboards", help="build the Grafana dashboards from code, or push them to Grafana")
    sub = dash.add_subparsers(dest="dashboards_command", metavar="ACTION", required=True)

    build = sub.add_parser("build", help="write dashboards/grafana/dashboards/*.json")
    build.add_argument("--check", action="store_true",
                       help="write nothing; fail when the checked-in JSON differs from the code")
    build.set_defaults(handler=_build)

    push = sub.add_parser("push", help="upload the dashboards to an existing Grafana")
    _grafana_url(push)
    push.add_argument("--folder-uid", default=None,
                      help="folder to save them in (created when missing); default: General")
    push.add_argument("--token-env", default=TOKEN_ENV,
                      help=f"environment variable holding the API token (default {TOKEN_ENV})")
    push.set_defaults(handler=_push)

    annotate = subparsers.add_parser(
        "annotate", help="post a run's phases and flag flips to Grafana as annotations")
    annotate.add_argument("run_dir", metavar="RUN_DIR", help="runs/<stamp>-<experiment>/")
    _grafana_url(annotate)
    annotate.add_argument("--token-env", default=TOKEN_ENV,
                          help=f"environment variable holding the API token (default {TOKEN_ENV})")
    annotate.set_defaults(handler=_annotate)


def _grafana_url(parser: argparse.ArgumentParser) -> None:
    # optional in the usage, as the help says: the default is read when the command runs, and
    # the handler says what is missing when neither is given
    parser.add_argument("--grafana-url", default=None, metavar="URL",
                        help=f"Grafana's base URL, e.g. http://localhost:3000 (default: ${URL_ENV}; "
                             "one of the two is required)")


def _url(args: argparse.Namespace) -> str | None:
    url = args.grafana_url or os.environ.get(URL_ENV)
    if not url:
        command = " ".join(x for x in (args.command, getattr(args, "dashboards_command", None)) if x)
        print(f"execbench {command}: error: no Grafana URL: pass --grafana-url URL or set "
              f"${URL_ENV}", file=sys.stderr)
    return url or None


def _build(args: argparse.Namespace) -> int:
    from dashboards.build import build_all, check_all

    if args.check:
        problems = check_all()
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            return 1
        print("dashboards: checked-in JSON matches the code")
        return 0
    for path in build_all():
        print(f"wrote {path}")
    return 0


def _token(args: argparse.Namespace) -> str | None:
    token = os.environ.get(args.token_env)
    if not token:
        print(f"{args.token_env} is not set: create a Grafana service-account token "
              "(Administration > Service accounts) and export it", file=sys.stderr)
        return None
    return token


def _push(args: argparse.Namespace) -> int:
    url = _url(args)
    if url is None:
        return 2
    token = _token(args)
    if token is None:
        return 2
    from dashboards.grafana_api import GrafanaError, push_dashboards

    try:
        for uid, where in push_dashboards(url, token, folder_uid=args.folder_uid):
            print(f"pushed {uid}: {where}")
    except GrafanaError as exc:
        print(f"push failed: {exc}", file=sys.stderr)
        return 1
    return 0


def _annotate(args: argparse.Namespace) -> int:
    url = _url(args)
    if url is None:
        return 2
    token = _token(args)
    if token is None:
        return 2
    from dashboards.grafana_api import GrafanaError, annotate_run

    try:
        count = annotate_run(url, token, args.run_dir)
    except (GrafanaError, FileNotFoundError, ValueError) as exc:
        print(f"annotate failed: {exc}", file=sys.stderr)
        return 1
    print(f"posted {count} annotations from {args.run_dir}")
    return 0
