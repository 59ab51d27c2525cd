"""Kubernetes resource quantities, exactly: parsed to fractions, printed without rounding.

`500m` CPU is 1/2 core and `1.5Gi` memory is 1610612736 bytes; sums and differences stay exact, so
the capacity the gate prints is the arithmetic a reviewer would do by hand.
"""

from __future__ import annotations

import re
from fractions import Fraction

# The suffixes of k8s.io/apimachinery's resource.Quantity: binary SI, decimal SI and exponents.
BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
DECIMAL = {"n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": Fraction(1)}
DECIMAL |= {"k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12)}
DECIMAL |= {"P": Fraction(10**15), "E": Fraction(10**18)}
_QUANTITY = re.compile(r"^([+-]?[0-9]*\.?[0-9]+)(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$")


class QuantityError(ValueError):
    pass


def parse(value: object) -> Fraction:
    """A quantity as a number of base units (cores, bytes). JSON numbers are taken as written."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise QuantityError(f"not a quantity: {value!r}")
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if not match:
        raise QuantityError(f"not a quantity: {value!r}")
    number, exponent, suffix = match.groups()
    base = Fraction(number)
    if exponent:
        return base * Fraction(10) ** int(exponent[1:])
    if suffix in BINARY:
        return base * BINARY[suffix]
    return base * DECIMAL[suffix or ""]


def _decimal(value: Fraction) -> str | None:
    """`value` as a terminating decimal of at most 3 places, or None."""
    scaled = value * 1000
    if scaled.denominator != 1:
        return None
    whole, rest = divmod(abs(scaled.numerator), 1000)
    sign = "-" if value < 0 else ""
    return f"{sign}{whole}" + (f".{rest:03d}".rstrip("0") if rest else "")


def cpu(value: Fraction) -> str:
    """Cores: `2`, `0.5`, `0.05`; below a millicore in nanocores, exact."""
    text = _decimal(value)
    if text is not None:
        return text
    return f"{value * 10**9}n" if (value * 10**9).denominator == 1 else f"{float(value):.6g}"


def memory(value: Fraction) -> str:
    """Bytes in the largest binary unit that shows them exactly within two decimals: `1.5Gi`, `1025Mi`."""
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = BINARY[suffix]
        if abs(value) >= unit and (value * 100 / unit).denominator == 1:
            text = _decimal(value / unit)
            if text is not None:
                return text + suffix
    return f"{value}" if value.denominator == 1 else f"{float(value):.6g}"


def signed(text: str) -> str:
    """A difference with its sign always shown (`+0.5`, `-512Mi`, `±0`)."""
    if text in ("0", "0Ki"):
        return "±0"
    return text if text.startswith("-") else f"+{text}"
