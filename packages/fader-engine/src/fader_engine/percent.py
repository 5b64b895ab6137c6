"""Split weights: JSON percentages <-> integer thousandths of a percent.

Weights are stored as integers so that sums are exact (no float drift: 33.333 + 33.333 + 33.334
is exactly 100) and bucketing never rounds. A percentage is converted through its shortest
decimal spelling (``repr``), so ``12.345`` means exactly 12345 thousandths even though the float
is not exactly 12.345.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation

from fader_engine.errors import WeightError
from fader_engine.model import PERCENT_SCALE

__all__ = ["WeightError", "format_percent", "percent_to_weight"]


def percent_to_weight(value: object) -> int:
    """Thousandths of a percent for a JSON weight; raise :class:`WeightError` if unusable."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WeightError(f"weight {value!r} is not a number; give a percentage such as 25 or 12.5")
    if isinstance(value, float) and not math.isfinite(value):
        raise WeightError(f"weight {value!r} is not a finite number")
    try:
        exact = Decimal(repr(value)) * PERCENT_SCALE
    except InvalidOperation:  # pragma: no cover - repr of a finite number is always decimal
        raise WeightError(f"weight {value!r} is not a decimal number") from None
    if exact < 0:
        raise WeightError(f"weight {value!r} is negative; weights are percentages from 0 to 100")
    if exact != exact.to_integral_value():
        raise WeightError(
            f"weight {value!r} has more than three decimals (granularity is 0.001%); "
            "round it to at most three decimals"
        )
    if exact > 100 * PERCENT_SCALE:
        raise WeightError(f"weight {value!r} is above 100; weights are percentages from 0 to 100")
    return int(exact)


def format_percent(weight: int) -> int | float:
    """The JSON percentage for `weight` thousandths: an int when integral, else e.g. ``12.345``.

    ``weight / 1000`` is the float nearest the three-decimal value, whose ``repr`` is that
    value, so :func:`percent_to_weight` maps it back exactly.
    """
    if weight % PERCENT_SCALE == 0:
        return weight // PERCENT_SCALE
    return weight / PERCENT_SCALE
