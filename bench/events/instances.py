"""The load of ``bench/events/run.py``: SDK instances evaluating flags at a steady rate.

One process of these hosts `--instances` real :class:`fader_sdk.FaderClient` objects, each with
its own connection, stream and summary thread, exactly as separate application processes would
have them, and one thread per instance that evaluates `--rate` times per second (in ticks of
0.1 s) over random users, and tracks an error metric for a share of them. The process counts
what it did itself (evaluations per flag and variant, tracked errors) and the bytes its clients
sent to the summaries endpoint, closes every client (which sends the last summaries), and prints
one JSON line for the parent to compare with what the server stored.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence

import httpx

from fader_sdk import FaderClient

SUMMARIES_PATH = "/api/v1/sdk/summaries"
COUNTRIES = ("NL", "DE", "FR", "US", "GB", "JP", "BR", "IN")
PLANS = ("free", "pro", "enterprise")


class CountingTransport(httpx.BaseTransport):
    """Counts the requests and request bytes (request line, headers, body) of summaries."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.lock = threading.Lock()
        self.requests = 0
        self.bytes = 0
        self.failed = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == SUMMARIES_PATH:
            body = request.read()
            head = len(request.method) + len(request.url.raw_path) + 12
            head += sum(len(k) + len(v) + 4 for k, v in request.headers.raw)
            with self.lock:
                self.requests += 1
                self.bytes += head + len(body)
        response = self._inner.handle_request(request)
        if request.url.path == SUMMARIES_PATH and response.status_code >= 300:
            with self.lock:
                self.failed += 1
        return response

    def close(self) -> None:
        self._inner.close()


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--flags", required=True, help="comma-separated flag keys")
    parser.add_argument("--instances", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True, help="evaluations/s per instance")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--flush", type=float, default=5.0)
    parser.add_argument("--error-share", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> None:
    args = parse_args(argv)
    flags = args.flags.split(",")
    rng = random.Random(args.seed)
    users = [
        {
            "targetingKey": f"user-{n}",
            "country": COUNTRIES[n % len(COUNTRIES)],
            "plan": PLANS[n % len(PLANS)],
        }
        for n in rng.sample(range(args.users * 4), args.users)
    ]
    transport = CountingTransport()
    clients = [
        FaderClient(
            args.key,
            base_url=args.url,
            transport=transport,
            init_timeout=60,
            event_flush_interval=args.flush,
        )
        for _ in range(args.instances)
    ]
    if not all(client.is_ready for client in clients):
        sys.exit("some SDK instances got no configuration within 60 s")
    counts: list[Counter[tuple[str, str]]] = [Counter() for _ in clients]
    errors = [0] * len(clients)
    per_tick = args.rate / 10
    start = time.monotonic()
    stop_at = start + args.seconds
    print(json.dumps({"ready": True}), flush=True)

    def work(index: int) -> None:
        client, mine = clients[index], counts[index]
        local = random.Random(args.seed * 1000 + index)
        owed, tick = 0.0, time.monotonic()
        while tick < stop_at:
            owed += per_tick
            for _ in range(int(owed)):
                user = users[local.randrange(len(users))]
                flag = flags[local.randrange(len(flags))]
                details = client.boolean_details(flag, user, False)
                mine[(flag, str(details.variant))] += 1
                if local.random() < args.error_share:
                    client.track("errors", user, 1.0, flag=flag, variant=details.variant)
                    errors[index] += 1
            owed -= int(owed)
            tick += 0.1
            time.sleep(max(0.0, tick - time.monotonic()))

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - start
    for client in clients:
        client.close()
    total: Counter[tuple[str, str]] = Counter()
    for mine in counts:
        total.update(mine)
    print(
        json.dumps(
            {
                "evaluations": {f"{f}\t{v}": n for (f, v), n in sorted(total.items())},
                "errors": sum(errors),
                "seconds": elapsed,
                "requests": transport.requests,
                "failed_requests": transport.failed,
                "bytes": transport.bytes,
                "dropped": sum(client.dropped_events for client in clients),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
