"""The floor under any fan-out on this machine: bare ``os.write`` calls to N loopback sockets.

Why: ``propagation.py`` measures how long Fader takes to put one change on 10,000 streams. Part
of that is not Fader's to save: each write to a loopback TCP socket also runs the receiving
side's TCP stack (and its ACK back) inside the sender's system call. This script measures that
part alone, with no HTTP, no event loop and no Python per stream beyond the call itself: a
receiver process holds N connections (kernel receive timestamps on, not reading while the
writes happen, like ``subscribers.py --hold``), and this process writes the same bytes to each,
from one thread and then split between two (``os.write`` releases the GIL, which is what
``fader_server/delivery/sinks.py`` relies on). A server in any language pays at least this on
this machine; the distance between it and Fader's "spread" is what Fader could still save.

    .venv/bin/python bench/delivery/floor.py --streams 10000 --size 700 --rounds 5

Prints, per thread count and round: the write loop's wall time, and the kernel arrival times
relative to its start (p50 / p99 / last). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
ANCILLARY = socket.CMSG_SPACE(16)


def raise_nofile_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- the receiving process ---------------------------------------------------------------
def receive(port: int, count: int) -> None:
    """Connect `count` sockets, then for each line on stdin read every socket once and answer
    the kernel arrival time of what each held (0 when nothing arrived)."""
    raise_nofile_limit()
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setblocking(False)
        socks.append(sock)
    print(json.dumps({"ready": count}), flush=True)
    for _ in sys.stdin:
        arrivals = []
        for sock in socks:
            stamp = 0.0
            try:
                _, ancillary, _, _ = sock.recvmsg(1 << 16, ANCILLARY)
            except BlockingIOError:
                ancillary = []
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    seconds, nanoseconds = struct.unpack("qq", payload[:16])
                    stamp = seconds + nanoseconds / 1e9
            arrivals.append(stamp)
        print(json.dumps({"arrivals": arrivals}), flush=True)


# --- the writing process -----------------------------------------------------------------
def _write_all(fds: Sequence[int], data: bytes) -> None:
    write = os.write
    for fd in fds:
        write(fd, data)


def fan_out(fds: list[int], data: bytes, threads: int) -> None:
    shares = [fds[i::threads] for i in range(threads)]
    workers = [threading.Thread(target=_write_all, args=(s, data)) for s in shares[1:]]
    for worker in workers:
        worker.start()
    _write_all(shares[0], data)
    for worker in workers:
        worker.join()


def measure(streams: int, size: int, rounds: int, threads: Sequence[int]) -> list[dict]:
    """Rows of {threads, round, write_ms, p50_ms, p99_ms, last_ms}, thread counts interleaved
    round by round so that the machine's drift falls on both."""
    raise_nofile_limit()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    port = listener.getsockname()[1]
    child = subprocess.Popen(
        [sys.executable, __file__, "--receive", str(port), "--streams", str(streams)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    accepted: list[socket.socket] = []
    while len(accepted) < streams:
        ready, _, _ = select.select([listener], [], [], 60)
        if not ready:
            child.kill()
            raise RuntimeError(f"only {len(accepted)} of {streams} connections arrived")
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.setblocking(False)
        accepted.append(conn)
    json.loads(child.stdout.readline())
    fds = [conn.fileno() for conn in accepted]
    watcher = select.epoll()  # as in any server: connections are watched for input and hang-ups
    for fd in fds:
        watcher.register(fd, select.EPOLLIN | select.EPOLLRDHUP)
    data = b"x" * size
    rows = []
    try:
        for number in range(1, rounds + 1):
            for count in threads:
                time.sleep(0.5)
                began = time.time()
                fan_out(fds, data, count)
                wrote = time.time()
                child.stdin.write(b"read\n")
                child.stdin.flush()
                arrivals = json.loads(child.stdout.readline())["arrivals"]
                late = sorted((a - began) * 1000 for a in arrivals if a)
                missing = sum(1 for a in arrivals if not a)
                rows.append(
                    {
                        "threads": count,
                        "round": number,
                        "write_ms": (wrote - began) * 1000,
                        "p50_ms": late[len(late) // 2] if late else float("nan"),
                        "p99_ms": late[max(0, int(len(late) * 0.99) - 1)] if late else 0.0,
                        "last_ms": late[-1] if late else float("nan"),
                        "missing": missing,
                    }
                )
    finally:
        child.kill()
        watcher.close()
        for conn in accepted:
            conn.close()
        listener.close()
    return rows


def print_rows(rows: list[dict], streams: int, size: int) -> None:
    print(f"bare os.write floor: {streams} loopback sockets, {size} bytes each, from one process")
    print("    threads  round  write ms   p50 ms   p99 ms  last ms  missing")
    for row in rows:
        print(
            f"    {row['threads']:>7}  {row['round']:>5}  {row['write_ms']:8.1f} "
            f"{row['p50_ms']:8.1f} {row['p99_ms']:8.1f} {row['last_ms']:8.1f}  {row['missing']:>7}"
        )
    for count in sorted({r["threads"] for r in rows}):
        mine = sorted(r["write_ms"] for r in rows if r["threads"] == count)
        print(
            f"    {count} thread(s): write loop median {mine[len(mine) // 2]:.1f} ms "
            f"(range {mine[0]:.1f}-{mine[-1]:.1f}), {mine[len(mine) // 2] * 1000 / streams:.1f} "
            "µs per stream"
        )


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=10000)
    parser.add_argument("--size", type=int, default=700, help="bytes per write (a patch event)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", default="1,2", help="thread counts to compare (1,2)")
    parser.add_argument("--receive", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.receive:
        receive(args.receive, args.streams)
        return 0
    threads = [int(n) for n in args.threads.split(",")]
    print_rows(measure(args.streams, args.size, args.rounds, threads), args.streams, args.size)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
