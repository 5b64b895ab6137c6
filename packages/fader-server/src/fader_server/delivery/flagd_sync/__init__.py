"""flagd's flag-sync gRPC service (``flagd.sync.v1.FlagSyncService``), served by ``fader serve``
on a port of its own so that every stock flagd *in-process* provider evaluates Fader's flags
locally (docs/sdks.md, docs/delivery-protocol.md).

- ``sync.proto``: the protocol, wire-identical to flagd's; ``sync_pb2*`` are generated from it
  by ``scripts/generate_flagd_sync.py`` and committed.
- :mod:`.credentials`: where a request carries its server SDK key (the providers' selector).
- :mod:`.documents`: each snapshot's flagd document, serialised once however many streams
  receive it.
- :mod:`.service`: the three RPCs, over the same snapshots, key checks and change hub as the
  HTTP delivery endpoints.
- :mod:`.server`: the ``grpc.aio`` server, on the event loop of the HTTP server.

Nothing outside this package imports the generated modules, and ``app`` imports this package
only when the port is configured: the generated ``sync_pb2`` registers the ``flagd.sync.v1``
messages in protobuf's process-wide descriptor pool, where another copy of the same protocol
(the flagd provider's own, in a process that embeds it) would clash with it.
"""
