"""Fader's evaluation engine: flag documents in, OpenFeature resolutions out.

Pure: no I/O, no clock (inject one), no globals. Load a document once, evaluate many times::

    engine = fader_engine.load(document_json)          # Fader's format or flagd's, detected
    engine.resolve_boolean("new-checkout", {"targetingKey": "u1", "email": "a@example.com"}, False)
"""

from fader_engine.bucketing import BucketingAlgorithm
from fader_engine.errors import ConfigurationError, FaderEngineError, Problem, UnknownFormatError
from fader_engine.evaluate import CompiledFlag, Engine
from fader_engine.formats import DocumentFormat, detect_format, load
from fader_engine.result import ErrorCode, Reason, Resolution, ResolvedType, ValueType

__all__ = [
    "BucketingAlgorithm",
    "CompiledFlag",
    "ConfigurationError",
    "DocumentFormat",
    "Engine",
    "ErrorCode",
    "FaderEngineError",
    "Problem",
    "Reason",
    "Resolution",
    "ResolvedType",
    "UnknownFormatError",
    "ValueType",
    "detect_format",
    "load",
]
