"""Reading JSON-shaped case documents field by field, collecting every problem with its path.

A reader never raises on a bad field: it records a Problem and returns a fallback, so one pass
reports everything wrong with a document. The caller raises InvalidInput at the end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gs_engine.errors import Problem
from gs_engine.spec.quantity import QuantityError, parse_quantity


class Fields:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def bad(self, path: str, message: str, fix: str = "") -> None:
        self.problems.append(Problem(path, message, fix))

    def mapping(
        self, doc: Mapping[str, Any], key: str, path: str, required: bool = False
    ) -> Mapping[str, Any]:
        value = doc.get(key)
        if value is None:
            if required:
                self.bad(path, "is required", "add an object here")
            return {}
        if not isinstance(value, Mapping):
            self.bad(path, f"must be an object, got {type(value).__name__}", "write a JSON object")
            return {}
        return value

    def items(
        self, doc: Mapping[str, Any], key: str, path: str, required: bool = False
    ) -> list[Mapping[str, Any]]:
        """A list of objects; entries that are not objects are reported and skipped."""
        value = doc.get(key)
        if value is None:
            if required:
                self.bad(path, "is required", "add a list here")
            return []
        if not isinstance(value, Sequence) or isinstance(value, str | bytes):
            self.bad(path, f"must be a list, got {type(value).__name__}", "write a JSON array")
            return []
        found: list[Mapping[str, Any]] = []
        for index, entry in enumerate(value):
            if isinstance(entry, Mapping):
                found.append(entry)
            else:
                self.bad(
                    f"{path}[{index}]", f"must be an object, got {type(entry).__name__}", "write an object"
                )
        return found

    def number(
        self,
        doc: Mapping[str, Any],
        key: str,
        path: str,
        default: float | None = None,
        minimum: float | None = None,
        positive: bool = False,
    ) -> float:
        value = doc.get(key)
        if value is None:
            if default is None:
                self.bad(path, "is required", "add a number here")
                return 0.0
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.bad(path, f"must be a number, got {value!r}", "write a JSON number")
            return default if default is not None else 0.0
        number = float(value)
        if positive and not number > 0:
            self.bad(path, f"must be greater than 0, got {value!r}", "use a positive number")
        elif minimum is not None and number < minimum:
            self.bad(path, f"must be at least {minimum:g}, got {value!r}", f"use a number >= {minimum:g}")
        return number

    def integer(
        self,
        doc: Mapping[str, Any],
        key: str,
        path: str,
        default: int | None = None,
        minimum: int | None = None,
    ) -> int:
        value = doc.get(key)
        if value is None:
            if default is None:
                self.bad(path, "is required", "add a whole number here")
                return 0
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                self.bad(path, f"must be a whole number, got {value!r}", "write an integer")
                return default if default is not None else 0
        if minimum is not None and value < minimum:
            self.bad(path, f"must be at least {minimum}, got {value}", f"use a number >= {minimum}")
        return int(value)

    def boolean(self, doc: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
        value = doc.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.bad(path, f"must be true or false, got {value!r}", "write true or false")
            return default
        return value

    def text(self, doc: Mapping[str, Any], key: str, path: str, default: str | None = None) -> str:
        value = doc.get(key)
        if value is None:
            if default is None:
                self.bad(path, "is required", "add a string here")
                return ""
            return default
        if not isinstance(value, str):
            self.bad(path, f"must be a string, got {value!r}", "write a JSON string")
            return default or ""
        return value

    def choice(
        self, doc: Mapping[str, Any], key: str, path: str, options: Sequence[str], default: str
    ) -> str:
        value = self.text(doc, key, path, default)
        if value not in options:
            self.bad(path, f"must be one of {', '.join(options)}, got {value!r}", f"use {options[0]}")
            return default
        return value

    def quantity(self, value: Any, path: str) -> float | None:
        """A Kubernetes quantity ("250m", "1Gi") or a plain number, in base units."""
        try:
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise QuantityError(f"{value!r} is not a quantity")
            return float(parse_quantity(value))
        except QuantityError as exc:
            self.bad(path, str(exc), 'write a quantity such as "250m", "1", "512Mi"')
            return None

    def quantities(self, doc: Mapping[str, Any], key: str, path: str) -> dict[str, float]:
        found: dict[str, float] = {}
        for name, raw in self.mapping(doc, key, path).items():
            value = self.quantity(raw, f"{path}.{name}")
            if value is not None:
                found[str(name)] = value
        return found
