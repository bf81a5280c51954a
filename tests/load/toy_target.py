"""A tiny HTTP target for soak and baseline tests: healthy, leaking, or slowed on purpose.

Run as a script (``python tests/load/toy_target.py --port 0 [--leak-bytes N] [--delay-ms D]``); it
prints ``{"port": P, "pid": PID}`` as one JSON line on stdout once it listens.  Endpoints:

- ``GET /work``     the request under load; leaks ``--leak-bytes`` per request and sleeps
                    ``--delay-ms`` before answering (without blocking other connections).
- ``GET /metrics``  Prometheus text: ``process_*`` metrics of this process, and
                    ``toy_request_duration_seconds`` (histogram, the design's latency buckets).

asyncio instead of ``http.server``: one thread serves thousands of keep-alive requests a second, so
the target is not what limits the load generator's benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.exposition import generate_latest

from pytest_rollout.openmetrics import LATENCY_BUCKETS  # the contract buckets

# The latency buckets of the design's metric contract, so baselines see the same resolution.


class ToyTarget:
    def __init__(self, leak_bytes: int, delay_s: float, jitter_s: float) -> None:
        self.leak_bytes = leak_bytes
        self.delay_s = delay_s
        self.jitter_s = jitter_s
        self.leaked: list[bytes] = []  # the leak: grows forever on purpose
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.latency = Histogram(
            "toy_request_duration_seconds",
            "Latency of /work",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter("toy_requests", "Requests to /work", registry=self.registry)
        self._counter = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:  # no Nagle: keep-alive requests would wait ~40 ms for delayed ACKs
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line = head.split(b"\r\n", 1)[0].split(b" ")
                path = request_line[1] if len(request_line) > 1 else b"/"
                length = _content_length(head)
                if length:
                    await reader.readexactly(length)
                if path.startswith(b"/metrics"):
                    body = generate_latest(self.registry)
                    ctype = b"text/plain; version=0.0.4; charset=utf-8"
                else:
                    body = await self.work()
                    ctype = b"text/plain"
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: "
                    + ctype
                    + b"\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\n\r\n"
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def work(self) -> bytes:
        start = time.perf_counter()
        self._counter += 1
        if self.leak_bytes:
            # b"x" * n writes every byte, so the pages really become resident (calloc'd ones don't).
            self.leaked.append(b"\xa5" * self.leak_bytes)
        delay = self.delay_s + (self.jitter_s if self._counter % 2 else 0.0)
        if delay > 0:
            await asyncio.sleep(delay)
        self.latency.observe(time.perf_counter() - start)
        self.requests.inc()
        return b"ok"


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


async def serve(args: argparse.Namespace) -> None:
    target = ToyTarget(args.leak_bytes, args.delay_ms / 1000.0, args.jitter_ms / 1000.0)
    server = await asyncio.start_server(
        target.handle, host="127.0.0.1", port=args.port, reuse_address=True, backlog=1024
    )
    port = server.sockets[0].getsockname()[1]
    import os

    print(json.dumps({"port": port, "pid": os.getpid()}), flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--leak-bytes", type=int, default=0, help="bytes leaked per /work request")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="added latency per request")
    parser.add_argument(
        "--jitter-ms", type=float, default=0.0, help="extra delay, every other request"
    )
    args = parser.parse_args()
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
