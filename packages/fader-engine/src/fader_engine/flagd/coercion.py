"""JavaScript value semantics that JsonLogic inherits: truthiness, loose equality, number coercion.

JsonLogic was specified against JavaScript (json-logic-js), and flagd's evaluators (Go:
``github.com/diegoholiveira/jsonlogic``, JS: ``json-logic-engine``) reproduce its rules, so a
targeting rule means the same thing in every provider. These functions are that rulebook, kept
apart from the compiler so the rules can be read and tested on their own.
Reference: https://jsonlogic.com/truthy.html and https://jsonlogic.com/operations.html

Python's ``bool`` is a subclass of ``int``; every check here tests ``bool`` first on purpose.
"""

from __future__ import annotations

import math
import re
from typing import Any

_JS_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
NAN = float("nan")


def truthy(value: Any) -> bool:
    """JsonLogic truthiness: JavaScript's, except that an empty array is falsy.

    So ``0``, ``""``, ``null`` and ``[]`` are false, while ``"0"``, ``"false"`` and ``{}`` are true.
    """
    if value is None or value is False:
        return False
    if value is True:
        return True
    if isinstance(value, int | float):
        return value != 0 and not (isinstance(value, float) and math.isnan(value))
    if isinstance(value, str | list):
        return len(value) > 0
    return True


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def to_number(value: Any) -> int | float:
    """JavaScript ``Number(value)``; ``NaN`` when the value has no numeric reading."""
    if value is None or value is False:
        return 0
    if value is True:
        return 1
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return 0
        if _JS_NUMBER.match(text):
            number = float(text)
            return int(number) if number.is_integer() and "." not in text else number
        if text in ("Infinity", "+Infinity", "-Infinity"):
            return -math.inf if text.startswith("-") else math.inf
        return NAN
    if isinstance(value, list):
        return to_number(to_string(value))
    return NAN


def to_string(value: Any) -> str:
    """JavaScript ``String(value)``: how ``cat``, ``in`` and loose equality see a value."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if isinstance(value, list):
        return ",".join("" if item is None else to_string(item) for item in value)
    return "[object Object]"


def _primitive(value: Any) -> Any:
    """JavaScript ToPrimitive for arrays and objects (their string form)."""
    return to_string(value) if isinstance(value, list | dict) else value


def loose_equal(left: Any, right: Any) -> bool:
    """JavaScript ``==`` (abstract equality), which JsonLogic's ``==`` follows.

    ``1 == "1"``, ``true == 1`` and ``0 == ""`` hold; ``null`` equals only ``null``.
    """
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, list | dict) and isinstance(right, list | dict):
        return left is right
    left, right = _primitive(left), _primitive(right)
    if isinstance(left, bool):
        left = int(left)
    if isinstance(right, bool):
        right = int(right)
    if isinstance(left, str) and isinstance(right, str):
        return left == right
    return bool(to_number(left) == to_number(right))


def strict_equal(left: Any, right: Any) -> bool:
    """JavaScript ``===``: no coercion; ``1 === 1.0`` (one number type), ``1 !== true``."""
    if is_number(left) and is_number(right):
        return bool(left == right)
    if type(left) is not type(right):
        return False
    return bool(left == right)


def less_than(left: Any, right: Any, *, or_equal: bool = False) -> bool:
    """JavaScript relational comparison: strings compare as text, everything else as numbers."""
    left, right = _primitive(left), _primitive(right)
    if isinstance(left, str) and isinstance(right, str):
        return left <= right if or_equal else left < right
    a, b = to_number(left), to_number(right)
    if math.isnan(a) or math.isnan(b):
        return False
    return a <= b if or_equal else a < b
