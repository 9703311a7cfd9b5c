"""The link proxy's own added delay, beyond the delay it is configured to add.

    python benchmarks/linkproxy_bench.py --rtt-ms 0 2 11 --rounds 200

An echo server behind gateway/linkproxy.py (the proxy on its own thread and event loop, as
`execbench gateway --link` runs it); a client measures, per configured RTT:

* `reused`: a 64-byte round trip on an open connection — configured: 1 RTT;
* `new`: connect, send, receive the echo, close — configured: 2 RTT (the connect handshake);
* `new tls`: the same over TLS 1.3 through the proxy's local CA — configured: 3 RTT (TCP, TLS,
  the echo), the rest is the handshake's CPU.

It prints the measured p50 / p95 and the added delay (measured − configured) for each, and the
proxy's own lateness record (how late each delayed write went out past its due time). A wall-clock
figure: printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from gateway.linkproxy import ThreadedLinkProxy


async def echo(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


def quantiles(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    return statistics.median(values), values[min(len(values) - 1, int(0.95 * len(values)))]


async def measure(port: int, rounds: int, ctx=None) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"reused": [], "new": []}
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    payload = b"x" * 64
    for _ in range(rounds):
        t = time.perf_counter()
        writer.write(payload)
        await writer.drain()
        await reader.readexactly(len(payload))
        out["reused"].append((time.perf_counter() - t) * 1000)
    writer.close()
    for _ in range(max(rounds // 4, 10)):
        t = time.perf_counter()
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        w.write(payload)
        await w.drain()
        await r.readexactly(len(payload))
        out["new"].append((time.perf_counter() - t) * 1000)
        w.close()
    return out


async def run(rtts: list[float], rounds: int) -> None:
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    upstream = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    print(f"{rounds} round trips a case; ms; added = measured p50 - configured")
    print(f"{'rtt':>5} {'case':8} {'configured':>10} {'p50':>8} {'p95':>8} {'added p50':>9} "
          f"{'added p95':>9}  proxy lateness p50/p95/max")
    for rtt in rtts:
        for tls in (False, True):
            link = ThreadedLinkProxy(upstream, rtt_ms=rtt, tls=tls).start()
            try:
                ctx = link.proxy.ca.client_context() if tls else None
                results = await measure(link.proxy.port, rounds, ctx)
                late = sorted(link.stats.lateness_ms)
            finally:
                link.stop()
            cases = [("reused", rtt), ("new", 2 * rtt)] if not tls else [("new tls", 3 * rtt)]
            for case, configured in cases:
                values = results["new" if case == "new tls" else case]
                p50, p95 = quantiles(values)
                lat = (f"{statistics.median(late):.3f}/{late[int(0.95 * (len(late) - 1))]:.3f}/"
                       f"{late[-1]:.3f}" if late else "-")
                print(f"{rtt:5g} {case:8} {configured:10.2f} {p50:8.3f} {p95:8.3f} "
                      f"{p50 - configured:9.3f} {p95 - configured:9.3f}  {lat}")
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rtt-ms", type=float, nargs="+", default=[0.0, 2.0, 11.0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(run(args.rtt_ms, args.rounds))


if __name__ == "__main__":
    main()
