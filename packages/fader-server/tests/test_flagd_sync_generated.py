"""Fader's flagd sync protocol file: its generated modules are up to date, and it is
wire-identical to flagd's own ``flagd/sync/v1/sync.proto`` (read in place from
``shared/conformance/flagd-schemas``, never copied; skipped when absent).

Wire-identical means what an encoder or decoder sees: the package, every message with every
field's name, number, type, label and optionality, the reserved numbers, and the service's
methods with their types and streaming. Comments and options are Fader's own. Both files are
compiled to descriptor sets and compared as data; nothing is imported into protobuf's global
descriptor pool (where the flagd provider's copy of the protocol lives in this process).
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[3]
OURS = ROOT / "packages/fader-server/src/fader_server/delivery/flagd_sync/sync.proto"


def _conformance_dir() -> Path:
    env = os.environ.get("FADER_CONFORMANCE_DIR")
    return Path(env) if env else (ROOT / ".." / "shared" / "conformance").resolve()


def test_the_generated_modules_are_up_to_date_with_the_proto() -> None:
    checked = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate_flagd_sync.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


def _descriptor(proto: Path, tmp_path: Path) -> descriptor_pb2.FileDescriptorProto:
    out = tmp_path / f"{proto.parent.name}-{proto.stem}.pb"
    well_known = resources.files("grpc_tools") / "_proto"
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{proto.parent}",
            f"-I{well_known}",
            f"--descriptor_set_out={out}",
            str(proto),
        ]
    )
    assert status == 0, f"protoc could not compile {proto}"
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    (only,) = files.file
    return only


def _wire(file: descriptor_pb2.FileDescriptorProto) -> dict[str, Any]:
    """What the wire depends on, as plain data."""
    return {
        "package": file.package,
        "syntax": file.syntax,
        "dependencies": list(file.dependency),
        "messages": {
            message.name: {
                "fields": [
                    (
                        field.name,
                        field.number,
                        field.type,
                        field.label,
                        field.type_name,
                        field.proto3_optional,
                        field.HasField("oneof_index"),
                    )
                    for field in message.field
                ],
                "oneofs": [oneof.name for oneof in message.oneof_decl],
                "reserved": [(r.start, r.end) for r in message.reserved_range],
            }
            for message in file.message_type
        },
        "services": {
            service.name: [
                (
                    method.name,
                    method.input_type,
                    method.output_type,
                    method.client_streaming,
                    method.server_streaming,
                )
                for method in service.method
            ]
            for service in file.service
        },
    }


def test_the_proto_is_wire_identical_to_flagds(tmp_path: Path) -> None:
    theirs = _conformance_dir() / "flagd-schemas/protobuf/flagd/sync/v1/sync.proto"
    if not theirs.is_file():
        pytest.skip(f"flagd's sync.proto is not at {theirs} (shared/conformance is absent)")
    ours, upstream = _wire(_descriptor(OURS, tmp_path)), _wire(_descriptor(theirs, tmp_path))
    assert ours == upstream
    assert set(ours["messages"]) >= {"SyncFlagsRequest", "SyncFlagsResponse"}  # not vacuous
    assert [m[0] for m in ours["services"]["FlagSyncService"]] == [
        "SyncFlags",
        "FetchAllFlags",
        "GetMetadata",
    ]
