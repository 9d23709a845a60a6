"""Pre-warming: standby replicas kept ready, scheduled windows, prediction, and a zygote.

`predictive` and `zygote` may be written as `true`/`false` or as a mapping of settings; both are
stored as a settings object (None when off), so `true` and `{}` mean the same.
"""

from __future__ import annotations

from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, Field, field_validator, model_validator

from gs_engine.spec.base import NonNegativeInt, PositiveInt, SpecModel, invalid
from gs_engine.spec.cron import CronError, CronSchedule, parse_cron
from gs_engine.spec.names import module_name_problem


class PrewarmWindow(SpecModel):
    """Keep at least `min_replicas` from each time `cron` fires, for `duration_minutes`."""

    cron: str
    timezone: str = "UTC"
    min_replicas: NonNegativeInt
    duration_minutes: PositiveInt = 60

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        try:
            parse_cron(value)
        except CronError as exc:
            raise invalid(
                f"{value!r} is not a cron expression: {exc}",
                "write five fields: minute hour day-of-month month day-of-week, e.g. '0 8 * * 1-5'",
            ) from exc
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise invalid(
                f"{value!r} is not a known IANA timezone", "write e.g. UTC, Asia/Seoul or Europe/Berlin"
            ) from exc
        return value

    @property
    def schedule(self) -> CronSchedule:
        return parse_cron(self.cron)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _on_off(value: Any) -> Any:
    if value is True:
        return {}
    if value is False:
        return None
    return value


class PredictiveSpec(SpecModel):
    horizon_seconds: Annotated[float, Field(gt=0)] = 300.0
    lookback_seconds: Annotated[float, Field(gt=0)] = 86400.0

    @model_validator(mode="after")
    def _order(self) -> PredictiveSpec:
        if self.lookback_seconds < self.horizon_seconds:
            raise invalid(
                f"lookbackSeconds {self.lookback_seconds:g} is shorter than "
                f"horizonSeconds {self.horizon_seconds:g}",
                "look back at least as far as you predict ahead",
                at="lookbackSeconds",
            )
        return self


class ZygoteSpec(SpecModel):
    """A warm parent per revision that forks replicas: `preload` modules are imported first, then
    the `warmup` hook (`module:function`, e.g. `server:warmup`) is called once with no arguments."""

    preload: list[str] = Field(default_factory=list)
    warmup: str | None = None

    @field_validator("warmup")
    @classmethod
    def _hook(cls, value: str | None) -> str | None:
        if value is None:
            return value
        module, sep, attr = value.partition(":")
        if not sep or module_name_problem(module) or not all(p.isidentifier() for p in attr.split(".")):
            raise invalid(
                f"{value!r} is not a module:function reference",
                "write the module and the function to call, e.g. server:warmup",
            )
        return value

    @field_validator("preload")
    @classmethod
    def _modules(cls, value: list[str]) -> list[str]:
        for index, name in enumerate(value):
            if module_name_problem(name):
                raise invalid(
                    f"{name!r} is not a Python module name", "write e.g. numpy or torch.nn", at=f"[{index}]"
                )
        return value


class PrewarmSpec(SpecModel):
    min_warm: NonNegativeInt = 0
    schedule: list[PrewarmWindow] = Field(default_factory=list)
    predictive: Annotated[PredictiveSpec | None, BeforeValidator(_on_off)] = None
    zygote: Annotated[ZygoteSpec | None, BeforeValidator(_on_off)] = None
