"""Guarded rollouts: release plans that advance on healthy metrics and roll back on regressions.

The modules here without I/O (:mod:`.plan`, :mod:`.stats`, :mod:`.decide`, :mod:`.apply`) hold
every decision, so the server, the tests and ``bench/guardrails`` (a simulation in simulated
time) all run the very same logic.
"""
