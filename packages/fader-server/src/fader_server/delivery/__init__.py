"""Delivery of environment snapshots to SDKs: built once per revision, fanned out to streams."""
