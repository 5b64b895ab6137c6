"""The last good flag set on disk, so an application can start while the server is down.

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

from fader_sdk.flag_set import FlagSet, Origin
from fader_sdk.holder import FlagSetHolder

log = logging.getLogger("fader_sdk")


def save_flag_set(path: str | os.PathLike[str], flag_set: FlagSet) -> None:
    """Atomically replace `path` with `flag_set` (as the delivery protocol's snapshot JSON)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(flag_set.to_wire(), out, separators=(",", ":"))
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


def load_flag_set(path: str | os.PathLike[str], origin: Origin = Origin.CACHE) -> FlagSet | None:
    """The flag set stored at `path`, or `None` (logged) when missing or unusable."""
    try:
        with open(path, encoding="utf-8") as source:
            payload = json.load(source)
        if not isinstance(payload, dict):
            raise ValueError("not a JSON object")
        return FlagSet.from_wire(payload, origin)
    except FileNotFoundError:
        return None
    except Exception as error:  # any failure means "no cache", never a crash
        log.warning("fader: ignoring configuration file %s: %s", path, error)
        return None


class CacheWriter:
    """A holder listener persisting every server flag set; failures are logged, not raised."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path

    def __call__(self, old: FlagSet | None, new: FlagSet) -> None:
        if new.origin is not Origin.SERVER:
            return
        try:
            save_flag_set(self.path, new)
        except OSError as error:
            log.warning("fader: could not write configuration cache %s: %s", self.path, error)


class FileSource:
    """A source that loads one flag set file: offline mode, or a bootstrap for tests and CI."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path

    def start(self, holder: FlagSetHolder) -> None:
        flag_set = load_flag_set(self.path, Origin.FILE)
        if flag_set is None:
            holder.fail(f"no usable configuration in {self.path}")
        else:
            holder.replace(flag_set)

    def close(self) -> None:
        pass
