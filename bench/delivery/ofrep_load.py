"""The OFREP load generator: open-loop, bursty arrivals; Zipf-distributed flags and users.

Started by ``ofrep.py`` in a process of its own (``--help`` says how to run it by hand). It
precomputes a schedule of *intended* send times, then sends each request at its time whether or
not earlier ones have been answered (open loop), on a pool of keep-alive HTTP/1.1 connections
that grows as needed up to `--connections`. Latency is measured from the intended send time, so
a server that falls behind is charged for the queue it causes (no coordinated omission); the
generator's own lateness (actual send minus intended) is reported too, to recognise a run where
the load generator, not the server, was the bottleneck.

Arrivals come in bursts: on and off periods with exponentially distributed lengths (mean
`--on-mean` and `--on-mean * (burst - 1)` seconds); Poisson arrivals at `burst * rate` inside
bursts, none between; so the mean rate is `rate` and the peak rate `burst` times that. Each
request evaluates a flag drawn from a Zipf law over `--flags` keys (single evaluation) or all
flags (bulk), for a user drawn from a Zipf law over `--users` targeting keys, with attributes
derived from the user (the same user always sends the same context).

Prints one JSON line: per request ``[intended offset s, latency ms, status]`` and the lateness.
Standard library only; knows OFREP's paths and bodies (``openapi.yaml`` of
open-feature/protocol), nothing of Fader.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import random
import sys
import time
from collections.abc import Sequence

COUNTRIES = ("NL", "DE", "FR", "US", "GB", "JP", "BR", "IN")
PLANS = ("free", "pro", "enterprise")


def zipf_cdf(n: int, s: float) -> list[float]:
    """Cumulative weights of ranks 1..n under Zipf(s); draw with bisect on a uniform."""
    total, cdf = 0.0, []
    for rank in range(1, n + 1):
        total += 1.0 / rank**s
        cdf.append(total)
    return [c / total for c in cdf]


def bursty_schedule(
    rng: random.Random, rate: float, burst: float, on_mean: float, duration: float
) -> list[float]:
    """Intended send times (seconds from the start) of an on/off Poisson process."""
    times: list[float] = []
    t = 0.0
    peak = rate * burst
    off_mean = on_mean * (burst - 1)
    while t < duration:
        end = min(duration, t + rng.expovariate(1 / on_mean))
        t += rng.expovariate(peak)
        while t < end:
            times.append(t)
            t += rng.expovariate(peak)
        t = end + (rng.expovariate(1 / off_mean) if off_mean > 0 else 0.0)
    return times


def build_requests(args: argparse.Namespace, count: int, rng: random.Random) -> list[bytes]:
    """Pre-encoded requests (built before the clock starts, so they cost no send time)."""
    flag_cdf = zipf_cdf(args.flags, args.flag_skew)
    user_cdf = zipf_cdf(args.users, args.user_skew)
    # Popularity ranks map to shuffled ids, so the hottest user is not user-0 for every flag.
    flag_ids = list(range(args.flags))
    user_ids = list(range(args.users))
    rng.shuffle(flag_ids)
    rng.shuffle(user_ids)
    head = f"Host: {args.host}:{args.port}\r\nAuthorization: Bearer {args.key}\r\n"
    head += "Content-Type: application/json\r\nAccept: application/json\r\n"
    requests = []
    for _ in range(count):
        user = user_ids[bisect.bisect_left(user_cdf, rng.random())]
        context = {
            "targetingKey": f"user-{user}",
            "country": COUNTRIES[user % len(COUNTRIES)],
            "plan": PLANS[(user // 8) % len(PLANS)],
        }
        body = json.dumps({"context": context}, separators=(",", ":")).encode()
        if args.mode == "single":
            flag = flag_ids[bisect.bisect_left(flag_cdf, rng.random())]
            path = f"/ofrep/v1/evaluate/flags/{args.prefix}-{flag}"
        else:
            path = "/ofrep/v1/evaluate/flags"
        line = f"POST {path} HTTP/1.1\r\n{head}Content-Length: {len(body)}\r\n\r\n"
        requests.append(line.encode() + body)
    return requests


IDLE_LIMIT = 4.0
"""Seconds a connection may sit idle before it is dropped instead of reused: uvicorn closes
keep-alive connections idle for 5 s, and a request written into one that is being closed fails
with nothing read (a real HTTP client retries those; so does :func:`run`, once)."""


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.idle_since = time.monotonic()
        self.reused = False

    async def exchange(self, request: bytes, timeout: float) -> int:
        """Send one request and read its whole answer; return the status."""
        self.writer.write(request)
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
            elif name.strip().lower() == "transfer-encoding":
                raise ValueError("chunked answers are not expected from OFREP")
        if length:
            await asyncio.wait_for(self.reader.readexactly(length), timeout)
        return status


class Pool:
    """Idle keep-alive connections; new ones opened while fewer than `limit` exist."""

    def __init__(self, host: str, port: int, limit: int) -> None:
        self.host, self.port, self.limit = host, port, limit
        self.idle: list[Connection] = []
        self.opened = 0
        self.peak = 0
        self._freed = asyncio.Condition()

    async def acquire(self) -> Connection:
        while True:
            while self.idle:
                connection = self.idle.pop()
                if time.monotonic() - connection.idle_since < IDLE_LIMIT:
                    connection.reused = True
                    return connection
                connection.writer.close()
                self.opened -= 1
            if self.opened < self.limit:
                self.opened += 1
                self.peak = max(self.peak, self.opened)
                try:
                    reader, writer = await asyncio.open_connection(self.host, self.port)
                except OSError:
                    self.opened -= 1
                    raise
                return Connection(reader, writer)
            async with self._freed:
                await self._freed.wait()

    async def release(self, connection: Connection | None) -> None:
        if connection is None:
            self.opened -= 1  # broken: dropped
        else:
            connection.idle_since = time.monotonic()
            self.idle.append(connection)
        async with self._freed:
            self._freed.notify()


async def run(args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(args.seed)
    schedule = bursty_schedule(rng, args.rate, args.burst, args.on_mean, args.duration)
    requests = build_requests(args, len(schedule), rng)
    pool = Pool(args.host, args.port, args.connections)
    for _ in range(min(args.warm_connections, args.connections)):  # outside the clock
        await pool.release(await pool.acquire())
    results: list[list[float]] = [[] for _ in schedule]
    lateness: list[float] = []
    loop = asyncio.get_running_loop()

    async def one(index: int, intended: float) -> None:
        connection = None
        status = 0
        try:
            connection = await pool.acquire()
            try:
                status = await connection.exchange(requests[index], args.timeout)
            except (asyncio.IncompleteReadError, ConnectionResetError) as exc:
                if not connection.reused or (
                    isinstance(exc, asyncio.IncompleteReadError) and exc.partial
                ):
                    raise
                # the server closed this keep-alive connection as we reused it: retry once
                connection.writer.close()
                await pool.release(None)
                connection = await pool.acquire()
                status = await connection.exchange(requests[index], args.timeout)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            status = -1
            results[index] = [schedule[index], float("nan"), status, type(exc).__name__]
            if connection is not None:
                connection.writer.close()
            connection = None
        finally:
            await pool.release(connection)
        if status != -1:
            results[index] = [schedule[index], (loop.time() - intended) * 1000, status]

    tasks = []
    start = loop.time() + 0.05
    for index, offset in enumerate(schedule):
        intended = start + offset
        delay = intended - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        lateness.append((loop.time() - intended) * 1000)
        tasks.append(asyncio.create_task(one(index, intended)))
    await asyncio.gather(*tasks)
    wall = loop.time() - start
    for connection in pool.idle:
        connection.writer.close()
    return {
        "requests": len(schedule),
        "wall_s": wall,
        "connections": pool.peak,
        "results": [[round(r[0], 4), round(r[1], 3), *r[2:]] for r in results],
        "lateness_ms": [round(v, 3) for v in lateness],
    }


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", required=True, help="an SDK key (Authorization: Bearer)")
    parser.add_argument("--mode", choices=("single", "bulk"), required=True)
    parser.add_argument("--rate", type=float, required=True, help="mean requests per second")
    parser.add_argument("--burst", type=float, default=4.0, help="peak rate / mean rate (4)")
    parser.add_argument("--on-mean", type=float, default=0.2, help="mean burst length, s (0.2)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of arrivals (10)")
    parser.add_argument("--flags", type=int, default=200)
    parser.add_argument("--prefix", default="flag", help="flag keys are <prefix>-<n>")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--flag-skew", type=float, default=1.1, help="Zipf exponent (1.1)")
    parser.add_argument("--user-skew", type=float, default=1.0, help="Zipf exponent (1.0)")
    parser.add_argument("--connections", type=int, default=256, help="most open at once")
    parser.add_argument("--warm-connections", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


if __name__ == "__main__":
    answer = asyncio.run(run(parse_args(sys.argv[1:])))
    sys.stdout.write(json.dumps(answer, separators=(",", ":")) + "\n")
