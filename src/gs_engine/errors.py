"""The project's error tree. Every backend error is translated into one of these at its boundary.

    GseError                      message, fix, field; http_status; retryable (+ retry_after)
    ├── InvalidInput              400/422  the user's document or request is wrong (lists problems)
    │   └── SpecInvalid           422      a service document failed validation
    ├── Unauthorized              401      missing or wrong bearer token
    ├── NotFound                  404      no such namespace / service / replica
    ├── Conflict                  409      already exists, or a route another service claims
    ├── Unsupported               400      the request needs something this engine/runtime lacks
    └── BackendError              502/503  a runtime, store or cluster failed
        ├── TemporaryBackendError          retryable, with a delay
        └── PermanentBackendError          will not succeed if repeated

A problem is one (field path, message, fix) triple; an error can carry many.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where, what, and what to write instead."""

    path: str
    message: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"field": self.path, "message": self.message, "fix": self.fix}

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        return f"{text} ({self.fix})" if self.fix else text


class GseError(Exception):
    http_status = 500
    title = "Internal error"
    retryable = False
    retry_after: float | None = None

    def __init__(
        self, message: str, fix: str = "", field: str = "", problems: list[Problem] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.field = field
        self.problems = list(problems or [])

    def __str__(self) -> str:
        parts = [self.message]
        if len(self.problems) == 1 and self.problems[0].message in self.message:
            fix = self.problems[0].fix
            return self.message if not fix or fix in self.message else f"{self.message} ({fix})"
        if self.problems:
            parts.extend(f"  - {p}" for p in self.problems)
        elif self.fix and self.fix not in self.message:
            parts[0] = f"{self.message} ({self.fix})"
        return "\n".join(parts)

    def as_problem(self) -> dict[str, object]:
        """An RFC 9457 problem document."""
        doc: dict[str, object] = {
            "type": f"https://gs-engine.dev/problems/{type(self).__name__}",
            "title": self.title,
            "status": self.http_status,
            "detail": self.message,
        }
        if self.fix:
            doc["fix"] = self.fix
        if self.field:
            doc["field"] = self.field
        if self.problems:
            doc["problems"] = [p.as_dict() for p in self.problems]
        return doc


class InvalidInput(GseError):
    http_status = 400
    title = "Invalid input"


class SpecInvalid(InvalidInput):
    http_status = 422
    title = "Invalid service document"


class Unauthorized(GseError):
    http_status = 401
    title = "Unauthorized"


class NotFound(GseError):
    http_status = 404
    title = "Not found"


class Conflict(GseError):
    http_status = 409
    title = "Conflict"


class Unsupported(GseError):
    http_status = 400
    title = "Not supported here"


class BackendError(GseError):
    http_status = 502
    title = "Backend error"


class TemporaryBackendError(BackendError):
    http_status = 503
    title = "Backend temporarily unavailable"
    retryable = True

    def __init__(self, message: str, fix: str = "", field: str = "", retry_after: float = 1.0) -> None:
        super().__init__(message, fix, field)
        self.retry_after = retry_after


class PermanentBackendError(BackendError):
    title = "Backend failed"
