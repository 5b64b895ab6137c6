"""Guarded rollouts, as pure logic: release plans that advance on healthy metrics and roll
back on regressions.

Nothing here does I/O: no database, no HTTP, no clock, no thread. The numbers come in as
arguments (usage rollup totals per stage window, gate readings, the time) and decisions go
out as values, so the server (:mod:`fader_server.services.rollouts` applies them,
:mod:`fader_server.runtime` gathers their inputs), the tests and ``bench/guardrails`` (a
simulation in simulated time) all run the very same logic.

- :mod:`.plan`: plans, stages, gates and a plan's state (to and from JSON).
- :mod:`.stats` and :mod:`.stage_tests`: the always-valid sequential tests.
- :mod:`.gates`: gate results from usage rollup totals and threshold readings.
- :mod:`.minute_windows`: which stage window a minute of rollups counts in.
- :mod:`.decide`: the state machine (start, advance, pause, resume, abort, roll back).
- :mod:`.apply`: the flag configuration each stage serves, built from the flag's own.
- :mod:`.notifications`: how webhook deliveries are signed.
"""
