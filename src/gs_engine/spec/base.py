"""What every schema model shares: camelCase aliases, unknown fields refused, frozen values.

Validators report a problem by raising `invalid(...)`: a pydantic error that carries the fix (and,
for checks made on a whole model, the sub-path at fault) so `problems.py` can turn it into a
`gs_engine.errors.Problem` without guessing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

ONE_PROBLEM = "gse_problem"
MANY_PROBLEMS = "gse_problems"


class SpecModel(BaseModel):
    """Base of the schema: documents use camelCase, Python uses snake_case."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        str_strip_whitespace=False,
    )


def invalid(message: str, fix: str = "", at: str = "") -> PydanticCustomError:
    """An error to raise from a validator; `at` is a sub-path below the value being validated."""
    return PydanticCustomError(ONE_PROBLEM, "{message}", {"message": message, "fix": fix, "at": at})


def invalid_many(problems: Sequence[tuple[str, str, str]]) -> PydanticCustomError:
    """Several problems found by one model-level check, each as (sub-path, message, fix)."""
    summary = "; ".join(message for _, message, _ in problems)
    return PydanticCustomError(MANY_PROBLEMS, "{summary}", {"summary": summary, "problems": tuple(problems)})


def scalar_text(value: Any) -> Any:
    """YAML turns `8080` and `true` into numbers and booleans; where a string is meant, take them back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


# Whole numbers: refuse booleans and strings (YAML already types numbers), accept only ints.
StrictInt = Annotated[int, Strict()]
NonNegativeInt = Annotated[int, Strict(), Field(ge=0)]
PositiveInt = Annotated[int, Strict(), Field(ge=1)]
Port = Annotated[int, Strict(), Field(ge=1, le=65535)]


def _text_list(value: Any) -> Any:
    if isinstance(value, str):
        raise invalid(
            f"{value!r} is a single string, not a list",
            "write a list, one argument per item, e.g. [python, app.py]",
        )
    if isinstance(value, list):
        return [scalar_text(item) for item in value]
    return value


TextList = Annotated[list[str], BeforeValidator(_text_list)]
