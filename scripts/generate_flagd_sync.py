"""Regenerate the Python modules of Fader's flagd sync protocol from its .proto file.

    .venv/bin/python scripts/generate_flagd_sync.py          # write the generated modules
    .venv/bin/python scripts/generate_flagd_sync.py --check  # exit 1 if they are out of date

The modules are committed (a user installing fader-server needs no protoc), so this runs only
when ``sync.proto`` changes; ``tests/test_flagd_sync_generated.py`` runs ``--check``. The proto
is compiled with its path relative to ``packages/fader-server/src``, so the generated service
module imports the message module as ``fader_server.delivery.flagd_sync.sync_pb2``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
SOURCE_ROOT = ROOT / "packages" / "fader-server" / "src"
PROTO = Path("fader_server/delivery/flagd_sync/sync.proto")
GENERATED = ("sync_pb2.py", "sync_pb2.pyi", "sync_pb2_grpc.py")


def generate(out: Path) -> None:
    """Compile the proto into `out` (a directory standing for the source root)."""
    well_known = resources.files("grpc_tools") / "_proto"  # google/protobuf/struct.proto
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{SOURCE_ROOT}",
            f"-I{well_known}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            str(PROTO),
        ]
    )
    if status != 0:
        raise SystemExit(f"protoc failed with status {status}")


def stale(out: Path) -> list[str]:
    """The generated modules whose committed text differs from a fresh generation in `out`."""
    directory = PROTO.parent
    return [
        name
        for name in GENERATED
        if not (SOURCE_ROOT / directory / name).is_file()
        or (SOURCE_ROOT / directory / name).read_text() != (out / directory / name).read_text()
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale modules")
    args = parser.parse_args()
    if not args.check:
        generate(SOURCE_ROOT)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        outdated = stale(Path(tmp))
    if outdated:
        print(
            f"out of date with {PROTO}: {', '.join(outdated)}; run scripts/generate_flagd_sync.py",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
