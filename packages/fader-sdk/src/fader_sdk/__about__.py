"""The version of fader-sdk, in one place: packaging reads it (``[tool.hatch.version]``)
and the code reports it, so an installed package can never announce another version."""

__version__ = "0.1.0"
