"""The last good snapshot on disk, so an application can start while the server is down.

Why write-temp, fsync, rename: a crash or power cut mid-write must leave either the old file or
the new one, never a truncated one that would fail to parse exactly when it is needed (the
server being down at start). ``os.replace`` is atomic on POSIX and Windows within a directory.

A corrupt or unreadable file is logged and ignored: it must never stop the application.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path

from fader_sdk.store import Origin, Snapshot, Store

log = logging.getLogger("fader_sdk")


def save_snapshot(path: str | os.PathLike[str], snapshot: Snapshot) -> None:
    """Atomically replace `path` with `snapshot` (in the delivery protocol's JSON shape)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(snapshot.to_wire(), out, separators=(",", ":"))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # Make the rename itself durable; not possible (nor needed) on every platform.
    with contextlib.suppress(OSError, AttributeError):
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def load_snapshot(path: str | os.PathLike[str], origin: Origin = Origin.CACHE) -> Snapshot | None:
    """The snapshot stored at `path`, or `None` (logged) when missing or unusable."""
    try:
        with open(path, encoding="utf-8") as source:
            payload = json.load(source)
        if not isinstance(payload, dict):
            raise ValueError("not a JSON object")
        return Snapshot.from_wire(payload, origin)
    except FileNotFoundError:
        return None
    except Exception as error:  # any failure means "no cache", never a crash
        log.warning("fader: ignoring configuration file %s: %s", path, error)
        return None


class CacheWriter:
    """A store listener persisting every server snapshot; failures are logged, not raised."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path

    def __call__(self, old: Snapshot | None, new: Snapshot) -> None:
        if new.origin is not Origin.SERVER:
            return
        try:
            save_snapshot(self.path, new)
        except OSError as error:
            log.warning("fader: could not write configuration cache %s: %s", self.path, error)


class FileSource:
    """A source that loads one snapshot file: offline mode, or a bootstrap for tests and CI."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path

    def start(self, store: Store) -> None:
        snapshot = load_snapshot(self.path, Origin.FILE)
        if snapshot is None:
            store.fail(f"no usable configuration in {self.path}")
        else:
            store.replace(snapshot)

    def close(self) -> None:
        pass
