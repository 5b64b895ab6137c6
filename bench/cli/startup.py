"""How long `fader` takes to start: `--help`, `--version` and two simple commands.

Run: ``.venv/bin/python bench/cli/startup.py`` (``--runs N``, default 21). It runs each command
N times, interleaved (so a burst of load on a shared machine hits every row alike), and prints
the median and the fastest wall time of each, beside ``python -c pass``: the interpreter's own
start, which no command can beat. The load average is printed too, since every figure grows
with it.

This is a script that prints figures, never a test: nothing here asserts on a time
(packages/fader-server/tests/test_cli_startup.py checks what `fader --help` imports instead).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo.json"


def commands(fader: str) -> dict[str, list[str]]:
    context = '{"targetingKey": "u-1", "email": "dev@example.com"}'
    return {
        "python -c pass (floor)": [sys.executable, "-c", "pass"],
        "fader --help": [fader, "--help"],
        "fader --version": [fader, "--version"],
        "fader serve --help": [fader, "serve", "--help"],
        "fader eval (one flag, one context)": [
            *(fader, "eval", str(DEMO), "--flag", "new-checkout", "--context", context)
        ],
    }


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="runs of each command")
    parser.add_argument(
        "--fader",
        default=str(Path(sys.executable).with_name("fader")),
        help="the fader executable (default: the one beside this Python)",
    )
    args = parser.parse_args()
    table = commands(args.fader)
    for argv in table.values():  # warm the file cache; a failing command stops here
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times: dict[str, list[float]] = {name: [] for name in table}
    for _ in range(args.runs):
        for name, argv in table.items():
            times[name].append(timed(argv))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{args.runs} runs each, {os.cpu_count()} CPUs, load average {load}")
    print(f"{'command':40} {'median':>9} {'fastest':>9}")
    for name, values in times.items():
        print(f"{name:40} {statistics.median(values):8.3f}s {min(values):8.3f}s")


if __name__ == "__main__":
    main()
