"""JsonLogic value operations: arithmetic, `min`/`max`, `cat`, `substr`, `in`, `merge`.

Plain functions of already-evaluated arguments, kept apart from the compiler: they follow
JavaScript's number and string rules (https://jsonlogic.com/operations.html) and return ``null``
where JavaScript would produce ``NaN`` or a division by zero, so a rule never raises.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from fader_engine.flagd.coercion import strict_equal, to_number, to_string


def _numeric(value: float) -> int | float | None:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def add(values: list[Any]) -> Any:
    return _numeric(sum((to_number(v) for v in values), 0))


def multiply(values: list[Any]) -> Any:
    return _numeric(math.prod(to_number(v) for v in values)) if values else None


def subtract(values: list[Any]) -> Any:
    if len(values) == 1:
        return _numeric(-to_number(values[0]))
    if len(values) < 2:
        return None
    return _numeric(to_number(values[0]) - to_number(values[1]))


def divide(values: list[Any]) -> Any:
    if len(values) < 2:
        return None
    a, b = to_number(values[0]), to_number(values[1])
    if b == 0 or math.isnan(b) or math.isnan(a):
        return None
    if isinstance(a, int) and isinstance(b, int) and a % b == 0:
        return a // b
    return a / b


def modulo(values: list[Any]) -> Any:
    if len(values) < 2:
        return None
    a, b = to_number(values[0]), to_number(values[1])
    if b == 0 or math.isnan(b) or math.isnan(a):
        return None
    result = math.fmod(a, b)  # JavaScript's %: the sign follows the dividend
    return int(result) if isinstance(a, int) and isinstance(b, int) else result


def extreme(pick: Callable[[list[int | float]], int | float]) -> Callable[[list[Any]], Any]:
    def extreme(values: list[Any]) -> Any:
        numbers = [to_number(v) for v in values]
        if not numbers or any(isinstance(n, float) and math.isnan(n) for n in numbers):
            return None
        return pick(numbers)

    return extreme


def cat(values: list[Any]) -> str:
    return "".join("" if v is None else to_string(v) for v in values)


def substr(values: list[Any]) -> Any:
    if not values:
        return None
    text = to_string(values[0])
    start = to_number(values[1]) if len(values) > 1 else 0
    start = 0 if isinstance(start, float) and math.isnan(start) else int(start)
    begin = max(len(text) + start, 0) if start < 0 else start
    if len(values) < 3:
        return text[begin:]
    length = to_number(values[2])
    length = 0 if isinstance(length, float) and math.isnan(length) else int(length)
    end = len(text) + length if length < 0 else begin + length
    return text[begin : max(end, begin)]


def contains(needle: Any, haystack: Any) -> bool:
    """``in``: substring test on a string, strict membership on an array, else false."""
    if isinstance(haystack, str):
        return to_string(needle) in haystack
    if isinstance(haystack, list):
        return any(strict_equal(needle, item) for item in haystack)
    return False


def merge(values: list[Any]) -> list[Any]:
    merged: list[Any] = []
    for value in values:
        if isinstance(value, list):
            merged.extend(value)
        else:
            merged.append(value)
    return merged
