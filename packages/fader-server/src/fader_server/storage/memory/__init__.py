"""An in-memory store for use-case tests (:mod:`.store` says what it is and is not)."""

from fader_server.storage.memory.store import MemoryStore

__all__ = ["MemoryStore"]
