"""Every public exception of the engine is in the tree documented in ``fader_engine.errors``.

A caller can then catch ``FaderEngineError`` for any engine failure, and the errors module's
docstring is the whole list: an exception class that a module defines outside the tree, or a
tree the docstring does not show, fails here.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import fader_engine
from fader_engine import errors
from fader_engine.errors import FaderEngineError


def public_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module_info in pkgutil.walk_packages(fader_engine.__path__, "fader_engine."):
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__.startswith("fader_engine")
                and not name.startswith("_")
            ):
                found[name] = value
    return found


def test_every_public_engine_exception_derives_from_the_documented_root() -> None:
    outside = sorted(
        n for n, c in public_exceptions().items() if not issubclass(c, FaderEngineError)
    )
    assert outside == []


def test_the_errors_docstring_names_every_public_engine_exception() -> None:
    undocumented = sorted(n for n in public_exceptions() if n not in (errors.__doc__ or ""))
    assert undocumented == []


@pytest.mark.parametrize("name", ["PatchError", "WeightError", "RegexError"])
def test_value_errors_stay_value_errors(name: str) -> None:
    """Callers that catch bad input as ValueError (the SDK, for a patch event) keep working."""
    assert issubclass(getattr(errors, name), ValueError)
