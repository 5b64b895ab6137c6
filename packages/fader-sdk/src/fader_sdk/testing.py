"""`TestData`: pin flag values in your own tests, without a server.

Why a data source rather than a mock client: the code under test keeps calling the real
:class:`~fader_sdk.client.FaderClient`, and the pinned values go through the real engine (a Fader
document is generated and loaded), so reasons, variants and type checks behave as in production.
Changes apply live to every client built from the same `TestData`::

    td = TestData()
    client = FaderClient.for_testing(td)
    td.flag("new-checkout").on_for("u-1", "u-2")       # on for these targeting keys, else off
    td.flag("theme").value("dark")                      # everyone gets "dark"
    td.flag("limits").value_for(100, "gold", attribute="plan")   # plan == gold -> 100
    td.flag("new-checkout").off()                       # switched off: reason DISABLED
"""

from __future__ import annotations

import threading
from typing import Any

import fader_engine
from fader_sdk.flag_set import FlagSet, Origin
from fader_sdk.holder import FlagSetHolder

__all__ = ["FlagBuilder", "TestData"]


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "number"
    return "object"


class FlagBuilder:
    """One pinned flag; every method republishes the whole test document at once."""

    __test__ = False  # not a pytest test class, despite the module name

    def __init__(self, data: TestData, key: str) -> None:
        self._data = data
        self.key = key
        self._variants: dict[str, Any] = {"on": True, "off": False}
        self._default = "on"
        self._rules: list[dict[str, Any]] = []
        self._enabled = True
        self._metadata: dict[str, Any] = {}

    def value(self, value: Any) -> FlagBuilder:
        """Everyone gets `value` (reason STATIC); clears targeting."""
        self._variants = (
            {"value": value} if not isinstance(value, bool) else {"on": True, "off": False}
        )
        self._default = "value" if not isinstance(value, bool) else ("on" if value else "off")
        self._rules = []
        self._enabled = True
        return self._publish()

    def on_for(self, *values: Any, attribute: str = "targetingKey") -> FlagBuilder:
        """A boolean flag: on where `attribute` is one of `values`, off for everyone else."""
        self._variants = {"on": True, "off": False}
        self._default = "off"
        self._rules = [self._rule(attribute, values, "on")]
        self._enabled = True
        return self._publish()

    def value_for(self, value: Any, *values: Any, attribute: str = "targetingKey") -> FlagBuilder:
        """Serve `value` where `attribute` is one of `values`; others keep the current default."""
        name = f"v{len(self._rules)}"
        if self._variants.keys() == {"on", "off"} and not isinstance(value, bool):
            raise ValueError(f"flag {self.key!r}: call .value(default) first for non-booleans")
        if isinstance(value, bool):
            name = "on" if value else "off"
        else:
            self._variants[name] = value
        self._rules.append(self._rule(attribute, values, name))
        return self._publish()

    def off(self) -> FlagBuilder:
        """Switch the flag off: the off variant, reason DISABLED."""
        self._enabled = False
        return self._publish()

    def metadata(self, **values: str | int | float | bool) -> FlagBuilder:
        self._metadata.update(values)
        return self._publish()

    def _rule(self, attribute: str, values: tuple[Any, ...], variant: str) -> dict[str, Any]:
        clause = {"attribute": attribute, "op": "in", "values": list(values)}
        return {"clauses": [clause], "variant": variant}

    def to_json(self) -> dict[str, Any]:
        first = next(iter(self._variants.values()))
        flag: dict[str, Any] = {
            "type": _type_of(first),
            "variants": dict(self._variants),
            "enabled": self._enabled,
            "offVariant": "off" if "off" in self._variants else self._default,
            "default": {"variant": self._default},
            "rules": list(self._rules),
        }
        if self._metadata:
            flag["metadata"] = dict(self._metadata)
        return flag

    def _publish(self) -> FlagBuilder:
        self._data._publish()
        return self


class TestData:
    """A :class:`~fader_sdk.sources.DataSource` whose flags you set from test code."""

    __test__ = False

    def __init__(self) -> None:
        self._flags: dict[str, FlagBuilder] = {}
        self._holders: list[FlagSetHolder] = []
        self._version = 0
        self._lock = threading.Lock()

    def flag(self, key: str) -> FlagBuilder:
        """The builder for `key`, created as a boolean flag that is on for everyone."""
        with self._lock:
            builder = self._flags.get(key)
            created = builder is None
            if builder is None:
                builder = self._flags[key] = FlagBuilder(self, key)
        if created:
            self._publish()
        return builder

    def remove(self, key: str) -> None:
        with self._lock:
            self._flags.pop(key, None)
        self._publish()

    def document(self) -> dict[str, Any]:
        """The Fader document the pinned flags amount to."""
        with self._lock:
            flags = {key: builder.to_json() for key, builder in self._flags.items()}
        return {"format": "fader/v1", "flags": flags}

    # -- DataSource -------------------------------------------------------------------------

    def start(self, holder: FlagSetHolder) -> None:
        with self._lock:
            self._holders.append(holder)
        self._publish()

    def close(self) -> None:
        pass

    def _publish(self) -> None:
        document = self.document()
        engine = fader_engine.load(document)  # raises at once on a nonsensical test setup
        with self._lock:
            self._version += 1
            flag_set = FlagSet(self._version, engine, document, Origin.TEST)
            holders = list(self._holders)
        for holder in holders:
            holder.replace(flag_set)
