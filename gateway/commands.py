"""`execbench gateway` and `execbench linkproxy`: the gateway tier and the link in front of the
executor (issue 13). Arguments only; the handlers import their heavy code when they run."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from service.commands import port_number

    gw = subparsers.add_parser(
        "gateway", help="run the gateway tier (the note's Node.js front) in front of an executor",
        description="Takes orders on POST /api/orders/instant/execute, calls the executor, writes "
                    "its timing-log line and answers with the executor's answer. Switches "
                    "keepalive and async_logging: PUT /admin/flags/<name> (EXECBENCH_ADMIN_TOKEN).")
    gw.add_argument("--upstream", required=True, help="the executor's base URL")
    gw.add_argument("--host", default="127.0.0.1")
    gw.add_argument("--port", type=port_number, default=8080)
    gw.add_argument("--keepalive", choices=["off", "on"], help="initial value in a new database")
    gw.add_argument("--async-logging", choices=["off", "on"], help="initial value in a new database")
    gw.add_argument("--sink-latency-ms", type=float, help="the log sink's latency (default: the profile's)")
    gw.add_argument("--log-queue", type=int, help="async_logging's queue size (default 1024)")
    gw.add_argument("--timing-log", help="the gateway's JSONL timing log (EXECBENCH_GATEWAY_TIMING_LOG)")
    gw.add_argument("--database-url", help="the switches' database (EXECBENCH_GATEWAY_DATABASE_URL)")
    gw.add_argument("--upstream-ca", help="CA file of an https upstream")
    gw.add_argument("--profile", help="profile for the defaults (EXECBENCH_PROFILE, seed)")
    gw.add_argument("--link", action="store_true",
                    help="put a link proxy (gateway/linkproxy.py) between gateway and executor, in "
                         "this process, with the profile's [link] RTT and TLS")
    gw.add_argument("--link-rtt-ms", type=float, help="the link's RTT (implies --link)")
    gw.add_argument("--link-tls", action=argparse.BooleanOptionalAction, default=None,
                    help="TLS on the link (implies --link; default: the profile's)")
    gw.set_defaults(handler=_gateway)

    lp = subparsers.add_parser(
        "linkproxy", help="a TCP proxy with per-direction delay and optional TLS (a link's cost)",
        description="Delays every byte by half the RTT each way and a new connection's first "
                    "bytes by one RTT more (the connect handshake); --tls adds a TLS handshake "
                    "with a local CA generated at start.")
    from gateway.linkproxy import add_arguments

    add_arguments(lp)
    lp.set_defaults(handler=_linkproxy)


def fail(command: str, message: str, status: int = 2) -> int:
    """`execbench <command>: error: …` on stderr, the form argparse uses for a bad option."""
    import sys

    print(f"execbench {command}: error: {message}", file=sys.stderr, flush=True)
    return status


def _gateway(args) -> int:
    import logging
    from pathlib import Path

    import uvicorn
    from pydantic import ValidationError

    from gateway.settings import GatewaySettings, link_defaults
    from service.profiles import ProfileError

    overrides = {k: v for k, v in {
        "upstream": args.upstream, "keepalive": args.keepalive, "async_logging": args.async_logging,
        "sink_latency_ms": args.sink_latency_ms, "log_queue_size": args.log_queue,
        "timing_log": args.timing_log, "database_url": args.database_url,
        "upstream_ca": args.upstream_ca, "profile": args.profile}.items() if v is not None}
    try:
        settings = GatewaySettings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        return fail("gateway", f"{'.'.join(map(str, first['loc']))}: {first['msg']}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line a request is not ours to pay
    link = None
    if args.link or args.link_rtt_ms is not None or args.link_tls is not None:
        from gateway.linkproxy import ThreadedLinkProxy
        from gateway.tlsca import TLSUnavailable

        try:
            defaults = link_defaults(settings.profile)
        except ProfileError as exc:
            return fail("gateway", str(exc))
        rtt = defaults["rtt_ms"] if args.link_rtt_ms is None else args.link_rtt_ms
        tls = defaults["tls"] if args.link_tls is None else args.link_tls
        try:
            link = ThreadedLinkProxy(settings.upstream, rtt_ms=rtt, tls=tls).start()
        except (TLSUnavailable, OSError) as exc:
            return fail("gateway", f"cannot start the link proxy: {exc}")
        updates = {"upstream": link.url}
        if tls:
            updates["upstream_ca"] = link.proxy.ca.ca_file
        settings = settings.model_copy(update=updates)
        print(f"execbench gateway: link {link.url} -> {args.upstream} (rtt {rtt:g} ms"
              f"{', TLS' if tls else ''})", flush=True)
    if settings.database_url.startswith("sqlite"):
        path = settings.database_url.split(":///", 1)[-1]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    from gateway.app import create_app

    try:
        app = create_app(settings)
    except ProfileError as exc:
        return fail("gateway", str(exc))
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=10)
    server = uvicorn.Server(config)
    try:
        server.run()
    finally:
        if link is not None:
            link.stop()
    if not server.started:
        return fail("gateway", f"could not listen on {args.host}:{args.port} (see the log above)", 3)
    return 0


def _linkproxy(args) -> int:
    from gateway.linkproxy import main

    argv = ["--upstream", args.upstream, "--host", args.host, "--port", str(args.port)]
    if args.rtt_ms is not None:
        argv += ["--rtt-ms", str(args.rtt_ms)]
    if args.tls is not None:
        argv.append("--tls" if args.tls else "--no-tls")
    if args.ca_out:
        argv += ["--ca-out", args.ca_out]
    if args.profile:
        argv += ["--profile", args.profile]
    return main(argv)
