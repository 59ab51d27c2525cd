"""How numbers, durations and label values are written into PromQL and rule files."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from decimal import Decimal

_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w|y)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def duration_seconds(duration: str) -> float:
    return sum(int(n) * _SECONDS[unit] for n, unit in _DURATION_PART.findall(duration))


def number(value: float) -> str:
    """A float as a PromQL literal: 2.0 -> 2, 0.005 -> 0.005 (a comparison, never a label value)."""
    return f"{round(value, 10):g}"


def le(value: float) -> str:
    """A bucket bound as Prometheus 3 stores the `le` label: classic-histogram `le` values are normalised
    on ingestion to the OpenMetrics float form (`FormatOpenMetricsFloat`: Go's shortest 'g' format, with
    ".0" appended when it has neither "." nor "e"), so a selector must say le="5.0", never le="5"
    (the Prometheus 3 migration guide, "`le` and `quantile` label values")."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if value == 0:
        return "0.0"
    shortest = Decimal(repr(float(value)))
    exponent = shortest.adjusted()
    digits = "".join(str(d) for d in shortest.normalize().as_tuple().digits)
    sign = "-" if value < 0 else ""
    # Go's 'g' with the shortest precision switches to an exponent below 1e-4 and from 1e6 up.
    if exponent < -4 or exponent >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    text = format(abs(Decimal(repr(float(value)))).normalize(), "f")
    return sign + (text if "." in text else text + ".0")


def alternatives(values: Sequence[str]) -> str:
    """A regex matching exactly these label values. Namespaces and job names are DNS labels
    ([a-z0-9-]): nothing in them is special in a regex, and PromQL strings reject Python's escapes."""
    return "|".join(sorted(set(values)))
