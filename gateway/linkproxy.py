"""A link with real connection cost: an asyncio TCP proxy that delays every byte it carries.

On loopback a TCP connect costs microseconds, so keep-alive would save nothing and a TLS
handshake only its CPU. These machines have no kernel `netem`, so the link is emulated in user
space, between the gateway and the executor:

* every chunk read from one side is written to the other `delay` later (half the RTT each way by
  default), in order, however many are in flight: latency without a bandwidth limit;
* the first chunk each way of a connection waits half an RTT more: the connect handshake (the
  SYN and SYN-ACK the kernel spared us), so a new connection pays one RTT before its first byte
  arrives, as across hosts;
* with `tls`, the delayed bytes are TLS records: the proxy terminates TLS behind the delay with a
  certificate of a local CA generated at start (gateway/tlsca.py), so a TLS 1.3 handshake costs
  its RTT (and its CPU), and a request on a new connection pays three RTTs, a reused one one.

`stats` counts connections and records how late each delayed write went out beyond its due time
(the timer's and the event loop's own delay): benchmarks/linkproxy_bench.py reports it.

    python -m gateway.linkproxy --upstream http://127.0.0.1:8000 --port 8100 --rtt-ms 11 --tls
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from gateway.tlsca import LocalCA, generate

CHUNK = 65536


@dataclass
class LinkStats:
    connections: int = 0  # accepted on the delayed side
    active: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    lateness_ms: list[float] = field(default_factory=list)  # actual - due, per delayed write
    keep_lateness: int = 100_000  # samples kept at most

    def late(self, ms: float) -> None:
        if len(self.lateness_ms) < self.keep_lateness:
            self.lateness_ms.append(ms)


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    return parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)


class LinkProxy:
    def __init__(self, upstream: str, *, rtt_ms: float, up_ms: float | None = None,
                 down_ms: float | None = None, handshake_ms: float | None = None, tls: bool = False,
                 host: str = "127.0.0.1", port: int = 0, ca: LocalCA | None = None):
        self.upstream_host, self.upstream_port = host_port(upstream)
        self.rtt_ms = rtt_ms
        self.up_s = (rtt_ms / 2 if up_ms is None else up_ms) / 1000
        self.down_s = (rtt_ms / 2 if down_ms is None else down_ms) / 1000
        # the handshake's extra wait, on the first chunk each way: one RTT in all by default
        self.handshake_up_s = (rtt_ms / 2 if handshake_ms is None else handshake_ms / 2) / 1000
        self.handshake_down_s = self.handshake_up_s
        self.tls = tls
        self.ca = (ca or generate()) if tls else None
        self.host, self.port = host, port
        self.stats = LinkStats()
        self._server: asyncio.AbstractServer | None = None
        self._terminator: asyncio.AbstractServer | None = None
        self._target: tuple[str, int] = (self.upstream_host, self.upstream_port)
        self._tasks: set[asyncio.Task] = set()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    async def start(self) -> None:
        if self.tls:
            self._terminator = await asyncio.start_server(
                self._terminate, "127.0.0.1", 0, ssl=self.ca.server_context(), limit=CHUNK)
            self._target = self._terminator.sockets[0].getsockname()[:2]
        self._server = await asyncio.start_server(self._accept, self.host, self.port, limit=CHUNK)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        for server in (self._server, self._terminator):
            if server is not None:
                server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for server in (self._server, self._terminator):
            if server is not None:
                with contextlib.suppress(Exception):
                    await server.wait_closed()

    def _track(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        self.stats.active += 1
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self._target, limit=CHUNK)
            except OSError:
                writer.close()
                return
            await self._join(
                self._delayed(reader, up_writer, self.up_s, self.handshake_up_s, "bytes_up"),
                self._delayed(up_reader, writer, self.down_s, self.handshake_down_s, "bytes_down"),
                writer, up_writer)
        finally:
            self.stats.active -= 1

    async def _terminate(self, reader, writer) -> None:
        """Behind the delay: TLS off, plaintext on to the upstream, no delay added."""
        try:
            up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        except OSError:
            writer.close()
            return
        await self._join(self._plain(reader, up_writer), self._plain(up_reader, writer), writer, up_writer)

    async def _join(self, one, other, *writers) -> None:
        """Both directions until either side closes; then the other is closed too."""
        tasks = [self._track(one), self._track(other)]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for w in writers:
                with contextlib.suppress(Exception):
                    w.close()

    @staticmethod
    async def _plain(reader, writer) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
            while data := await reader.read(CHUNK):
                writer.write(data)
                await writer.drain()

    async def _delayed(self, reader, writer, delay_s: float, first_extra_s: float, counter: str) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                self.stats.late((loop.time() - due) * 1000)
                if not data:
                    return  # the sender closed: the link closes after what it carried
                writer.write(data)
                await writer.drain()

        delivering = self._track(deliver())
        last_due, extra = 0.0, first_extra_s
        try:
            with contextlib.suppress(ConnectionError, OSError):
                while True:
                    data = await reader.read(CHUNK)
                    due = max(loop.time() + delay_s + extra, last_due)
                    extra, last_due = 0.0, due
                    queue.put_nowait((due, data))
                    if not data:
                        break
                    setattr(self.stats, counter, getattr(self.stats, counter) + len(data))
            queue.put_nowait((last_due, b""))
            with contextlib.suppress(ConnectionError, OSError):
                await delivering
        finally:
            delivering.cancel()


class ThreadedLinkProxy:
    """A LinkProxy on its own event loop in a daemon thread: its timers do not wait for the
    caller's loop (the gateway's, or a test's)."""

    def __init__(self, *args, **kwargs):
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.proxy = LinkProxy(*args, **kwargs)
        self._thread = threading.Thread(target=self._run, name="linkproxy", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.proxy.start())
        except BaseException as exc:  # noqa: BLE001 -- reported to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> ThreadedLinkProxy:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    @property
    def url(self) -> str:
        return self.proxy.url

    @property
    def stats(self) -> LinkStats:
        return self.proxy.stats

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.proxy.close(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--upstream", required=True, help="where the link leads, e.g. http://127.0.0.1:8000")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--rtt-ms", type=float, default=None, help="default: the profile's [link] rtt_ms")
    parser.add_argument("--tls", action=argparse.BooleanOptionalAction, default=None,
                        help="TLS behind the delay (default: the profile's [link] tls)")
    parser.add_argument("--ca-out", default=None, help="directory for the generated CA (ca.pem)")
    parser.add_argument("--profile", default=None, help="profile for the defaults (EXECBENCH_PROFILE, seed)")


async def serve(args) -> None:
    import os

    from gateway.settings import link_defaults

    defaults = link_defaults(args.profile or os.environ.get("EXECBENCH_PROFILE", "seed"))
    rtt = defaults["rtt_ms"] if args.rtt_ms is None else args.rtt_ms
    tls = defaults["tls"] if args.tls is None else args.tls
    ca = generate(args.ca_out) if tls else None
    proxy = LinkProxy(args.upstream, rtt_ms=rtt, tls=tls, host=args.host, port=args.port, ca=ca)
    await proxy.start()
    print(f"linkproxy {proxy.url} -> {args.upstream}: rtt {rtt:g} ms"
          + (f", TLS (CA {proxy.ca.ca_file})" if tls else ""), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await proxy.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
