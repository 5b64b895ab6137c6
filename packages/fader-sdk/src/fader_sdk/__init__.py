"""Fader's Python SDK: evaluates flags locally and keeps serving through server outages."""
