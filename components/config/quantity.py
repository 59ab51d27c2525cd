"""Kubernetes resource quantities: the one parser behind settings checks and rendered configs."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Final

# A plain decimal number and at most one suffix; no exponents and no signs (settings never need them).
_QUANTITY = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<suffix>[KMGTPE]i|[kMGTPE]|m)?$")
_FACTORS: Final[dict[str | None, Decimal]] = {
    None: Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(1000),
    "M": Decimal(1000**2),
    "G": Decimal(1000**3),
    "T": Decimal(1000**4),
    "P": Decimal(1000**5),
    "E": Decimal(1000**6),
    "Ki": Decimal(1024),
    "Mi": Decimal(1024**2),
    "Gi": Decimal(1024**3),
    "Ti": Decimal(1024**4),
    "Pi": Decimal(1024**5),
    "Ei": Decimal(1024**6),
}


def parse_quantity(quantity: str) -> Decimal:
    """The exact value of a quantity: "250m" -> 0.25, "1.5Gi" -> 1610612736; ValueError otherwise."""
    match = _QUANTITY.match(quantity)
    if not match:
        raise ValueError(f"{quantity!r} is not a Kubernetes quantity such as 250m, 256Mi or 1G")
    return Decimal(match["number"]) * _FACTORS[match["suffix"]]


def cpu_millicores(value: str) -> float:
    return float(parse_quantity(value) * 1000)


def memory_bytes(value: str) -> float:
    return float(parse_quantity(value))


def quantity_bytes(quantity: str) -> int:
    """Bytes of a memory quantity as a whole positive number: "256Mi" -> 268435456, "1G" -> 1000000000.

    Redis reads a plain number as bytes; its own suffixes differ from Kubernetes' ("m" is 10**6 in Redis,
    10**-3 in Kubernetes), so its config carries bytes."""
    match = _QUANTITY.match(quantity)
    if not match or match["suffix"] == "m":
        # Memory in thousandths of a byte means nothing.
        raise ValueError(f"{quantity!r} is not a Kubernetes memory quantity such as 256Mi, 1Gi or 512M")
    value = parse_quantity(quantity)
    if value != value.to_integral_value():
        raise ValueError(f"{quantity!r} is not a whole number of bytes")
    if value <= 0:
        raise ValueError(f"{quantity!r}: the size must be positive (Redis reads maxmemory 0 as no limit)")
    return int(value)
