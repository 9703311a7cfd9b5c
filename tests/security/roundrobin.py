"""A round-robin TCP proxy: one address in front of several replicas, as a balancer would be.

`python -m tests.security.roundrobin 22020 127.0.0.1:22021 127.0.0.1:22022` — each new client
connection goes to the next upstream, so an experiment run against the proxy (`execbench run
flip-mix --target http://127.0.0.1:22020`) spreads its bursts' connections over the replicas.
"""

from __future__ import annotations

import asyncio
import itertools
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def serve(port: int, upstreams: list[tuple[str, int]]) -> None:
    cycle = itertools.cycle(upstreams)

    async def handle(client_reader, client_writer):
        host, upstream_port = next(cycle)
        try:
            up_reader, up_writer = await asyncio.open_connection(host, upstream_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, up_writer), _pipe(up_reader, client_writer))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> None:
    port = int(argv[0])
    upstreams = [(u.rsplit(":", 1)[0], int(u.rsplit(":", 1)[1])) for u in argv[1:]]
    asyncio.run(serve(port, upstreams))


if __name__ == "__main__":
    main(sys.argv[1:])
