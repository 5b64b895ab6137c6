"""What runs by itself, beside the requests: background threads and the I/O they do.

- :mod:`.scheduler`: the rollout scheduler (a ticking thread and a small worker pool).
- :mod:`.gate_reader`: reads Prometheus and HTTP-check gates for it.
- :mod:`.webhook_delivery`: posts the notification outbox's webhook deliveries, with retries.
- :mod:`.retention`: deletes old usage rollups and debug events, periodically.
- :mod:`.outbound_http`: the guarded HTTP client both use (address policy, deadline, byte cap).

They are built and started in :mod:`fader_server.app` (the delivery hub, the other thing that
runs by itself, is :mod:`fader_server.delivery`). They call the use cases
(:mod:`fader_server.services`), never the other way round.
"""
