"""Pydantic's validation errors turned into `Problem(path, message, fix)`, never leaked as they are.

Paths follow the document: `service.containers[0].resources.limits.cpu`, and `labels["a/b"]` for keys
that are not plain words. Errors raised with `base.invalid` carry their own fix; pydantic's built-in
errors get one here, by type. Unknown fields are answered with the nearest known name.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from gs_engine.errors import Problem
from gs_engine.spec.base import MANY_PROBLEMS, ONE_PROBLEM

_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def join_path(base: str, part: str | int) -> str:
    if isinstance(part, int):
        return f"{base}[{part}]"
    if part.startswith("["):
        return base + part
    if not _WORD.match(part):
        return f'{base}["{part}"]'
    return f"{base}.{part}" if base else part


def _join_sub(base: str, sub: str) -> str:
    """Append a sub-path written like 'limits.cpu' or '[1].name'."""
    if not sub:
        return base
    if sub.startswith("["):
        return base + sub
    return f"{base}.{sub}" if base else sub


def _unwrap(annotation: Any) -> list[Any]:
    """The model classes an annotation can lead to (through Optional, list, dict, Annotated)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, dict, tuple):
        found: list[Any] = []
        for arg in typing.get_args(annotation):
            found.extend(_unwrap(arg))
        return found
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _model_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """Walk the schema along `loc` (document aliases) to the model that holds the last part."""
    model: type[BaseModel] | None = root
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = next(
            (f for name, f in model.model_fields.items() if part in (name, f.alias)),
            None,
        )
        if field is None:
            return None
        candidates = _unwrap(field.annotation)
        model = candidates[0] if candidates else None
    return model


def _known_fields(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _builtin_fix(error: ErrorDetails, root: type[BaseModel]) -> tuple[str, str]:
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    loc = error["loc"]
    given = error.get("input")
    field = str(loc[-1]) if loc else "document"
    if kind == "extra_forbidden":
        model = _model_at(root, loc[:-1])
        known = _known_fields(model) if model else []
        close = difflib.get_close_matches(field, known, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else "remove it or check the spelling"
        if known:
            hint += f"; known fields here: {', '.join(known)}"
        return f"unknown field '{field}'", hint
    if kind == "missing":
        return f"'{field}' is required", f"add {field}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "")
        return f"{given!r} is not allowed here", f"write one of: {expected.replace(' or ', ', ')}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{given!r} is not a whole number", "write a whole number without quotes, e.g. 3"
    if kind in ("float_type", "float_parsing"):
        return f"{given!r} is not a number", "write a number without quotes, e.g. 1.5"
    if kind in ("bool_type", "bool_parsing"):
        return f"{given!r} is not true or false", "write true or false"
    if kind in ("string_type",):
        return f"{given!r} is not text", "write a string (quote it if needed)"
    if kind in ("list_type", "tuple_type"):
        return f"{given!r} is not a list", "write a list, e.g. [a, b] or one '- item' per line"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"{given!r} is not a mapping", "write key: value pairs under this field"
    if kind == "too_short":
        least = ctx.get("min_length", 1)
        return f"needs at least {least} item(s)", f"add at least {least} item(s)"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = {
            "greater_than_equal": ("ge", "at least"),
            "greater_than": ("gt", "more than"),
            "less_than_equal": ("le", "at most"),
            "less_than": ("lt", "less than"),
        }[kind]
        limit = ctx.get(bound[0])
        return f"{given!r} is out of range", f"write a number {bound[1]} {limit}"
    return error["msg"], ""


def problems_from(exc: ValidationError, root: type[BaseModel], prefix: str = "") -> list[Problem]:
    """Every error of `exc` as a Problem, paths prefixed with `prefix` (e.g. 'service')."""
    found: list[Problem] = []
    for error in exc.errors():
        path = prefix
        for part in error["loc"]:
            if part == "[key]":
                continue
            path = join_path(path, part)
        ctx: dict[str, Any] = dict(error.get("ctx") or {})
        if error["type"] == ONE_PROBLEM:
            found.append(
                Problem(_join_sub(path, str(ctx.get("at", ""))), str(ctx["message"]), str(ctx["fix"]))
            )
        elif error["type"] == MANY_PROBLEMS:
            for sub, message, fix in ctx["problems"]:
                found.append(Problem(_join_sub(path, sub), message, fix))
        else:
            message, fix = _builtin_fix(error, root)
            found.append(Problem(path, message, fix))
    return found
