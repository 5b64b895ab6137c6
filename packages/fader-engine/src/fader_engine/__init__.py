"""Fader's evaluation engine: flag documents in, OpenFeature resolutions out.

Pure: no I/O, no clock (inject one), no globals. Load a document once, evaluate many times::

    engine = fader_engine.load(document_json)          # Fader's format or flagd's, detected
    engine.resolve_boolean("new-checkout", {"targetingKey": "u1", "email": "a@example.com"}, False)
"""
