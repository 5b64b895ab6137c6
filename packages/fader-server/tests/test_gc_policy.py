"""A serving process's garbage-collector policy (runtime/gc_policy.py): what exists once the
app is built is frozen, and full collections wait for many more collections of the middle
generation. Checked in a child process, since the policy is process-wide and this one runs
many apps."""

from __future__ import annotations

import json
import subprocess
import sys

from fader_server.runtime.gc_policy import FULL_COLLECTION_AFTER

_PROBE = """
import gc, json
from fader_server.runtime import gc_policy
before = gc.get_threshold()
gc_policy.apply()
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
"""


def test_apply_freezes_what_exists_and_spaces_full_collections_out() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    seen = json.loads(done.stdout)
    young, middle, oldest = seen["before"]
    assert seen["after"] == [young, middle, FULL_COLLECTION_AFTER]
    assert oldest < FULL_COLLECTION_AFTER
    assert seen["frozen"] > 1000  # the interpreter's and Fader's modules, at least
