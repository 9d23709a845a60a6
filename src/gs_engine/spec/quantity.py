"""Kubernetes resource quantities: "250m", "1.5", "512Mi", "1G", "1e3"."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_PATTERN = re.compile(
    r"^(?P<num>[+-]?(?:\d+\.?\d*|\.\d+))(?:(?P<exp>[eE][+-]?\d+)|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$"
)


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


def parse_quantity(value: str | int | float) -> Decimal:
    """The quantity's value in base units (cores for cpu, bytes for memory)."""
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a quantity")
    if isinstance(value, int | float):
        return Decimal(str(value))
    text = str(value).strip()
    match = _PATTERN.match(text)
    if not match:
        raise QuantityError(
            f"{value!r} is not a quantity; write a number with an optional suffix, e.g. 250m, 0.5, 512Mi, 1Gi"
        )
    try:
        number = Decimal(match["num"])
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only decimals
        raise QuantityError(f"{value!r} is not a quantity") from exc
    if match["exp"]:
        return number * (Decimal(10) ** int(match["exp"][1:]))
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    return number * _DECIMAL[suffix]


def cpu_cores(value: str | int | float) -> float:
    """CPU quantity as cores ("250m" -> 0.25)."""
    return float(parse_quantity(value))


def memory_bytes(value: str | int | float) -> int:
    """Memory quantity as bytes, rounded up ("1Gi" -> 1073741824)."""
    amount = parse_quantity(value)
    whole = int(amount)
    return whole + 1 if amount > whole else whole


def format_cpu(cores: float) -> str:
    millis = round(cores * 1000)
    return f"{millis // 1000}" if millis % 1000 == 0 else f"{millis}m"


def format_memory(num_bytes: int) -> str:
    for suffix, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if num_bytes >= size and num_bytes % size == 0:
            return f"{num_bytes // size}{suffix}"
    return str(num_bytes)
