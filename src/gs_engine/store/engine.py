"""Engines for SQLite (the embedded default) and PostgreSQL, and the translation of their errors.

Everything that can raise a SQLAlchemy or driver exception runs inside `translate_errors`, so callers
of the store only ever see the project's own error tree (`gs_engine.errors`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
    ProgrammingError,
    SQLAlchemyError,
)
from sqlalchemy.pool import StaticPool

from gs_engine.errors import (
    Conflict,
    GseError,
    InvalidInput,
    PermanentBackendError,
    TemporaryBackendError,
    Unsupported,
)

SQLITE_BUSY_TIMEOUT_MS = 5000
WRITE_OPTION = "gse_write"  # execution option: this transaction writes (SQLite takes the write lock at BEGIN)

_URL_FIX = "set GSE_DATABASE_URL to sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB"
_MISSING_TABLE = re.compile(r"no such table|UndefinedTable|relation \S+ does not exist", re.IGNORECASE)


def normalize_url(url: str) -> URL:
    """Parse a database URL; `postgresql://` (and `postgres://`) use the psycopg 3 driver."""
    if not url or not url.strip():
        raise InvalidInput("the database URL is empty", fix=_URL_FIX, field="database_url")
    try:
        parsed = make_url(url.strip())
    except ArgumentError as exc:
        raise InvalidInput(
            f"cannot parse the database URL: {exc}", fix=_URL_FIX, field="database_url"
        ) from exc
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgresql", "postgres"):
        if driver not in ("", "psycopg"):
            raise Unsupported(
                f"database driver {parsed.drivername!r} is not supported",
                fix="use postgresql+psycopg://... (psycopg 3)",
                field="database_url",
            )
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed
    raise Unsupported(
        f"database backend {backend!r} is not supported; the store runs on SQLite or PostgreSQL",
        fix=_URL_FIX,
        field="database_url",
    )


def make_engine(url: str) -> Engine:
    parsed = normalize_url(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            return _sqlite_engine(parsed)
        connect_args = {} if "connect_timeout" in parsed.query else {"connect_timeout": 5}
        return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise Unsupported(
            f"the driver for {parsed.drivername} is not installed",
            fix="pip install 'gs-engine[postgres]'",
            field="database_url",
        ) from exc
    except ArgumentError as exc:
        raise InvalidInput(f"bad database URL: {exc}", fix=_URL_FIX, field="database_url") from exc


def _sqlite_engine(url: URL) -> Engine:
    in_memory = url.database in (None, "", ":memory:")
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
    if in_memory:
        # One shared connection, or every thread would see its own empty database.
        kwargs["poolclass"] = StaticPool
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _on_begin).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS:d}")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A writer takes the lock up front, so two writers queue on busy_timeout instead of one
        # failing when it upgrades a read lock; readers stay concurrent under WAL.
        if conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


@contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Map backend exceptions raised while doing `what` onto the project's error tree."""
    try:
        yield
    except GseError:
        raise
    except IntegrityError as exc:
        raise Conflict(
            f"{what} conflicts with a concurrent change: {_short(exc)}",
            fix="read the object again and retry",
        ) from exc
    except (OperationalError, ProgrammingError) as exc:
        if _MISSING_TABLE.search(str(exc.orig)):
            raise PermanentBackendError(
                f"{what} failed: the database has no GS-Engine tables",
                fix="migrate the database first (Store.migrate(); `gse up` does it at start)",
            ) from exc
        if "unable to open database file" in str(exc.orig):
            raise PermanentBackendError(
                f"{what} failed: SQLite cannot open the database file",
                fix="check that the database file's folder exists and is writable (GSE_HOME)",
            ) from exc
        if isinstance(exc, ProgrammingError):
            raise PermanentBackendError(f"{what} failed: {_short(exc)}") from exc
        raise TemporaryBackendError(
            f"{what} failed: the database is unavailable or busy: {_short(exc)}",
            fix="check that the database is reachable; the request can be retried",
        ) from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise TemporaryBackendError(
                f"{what} failed: the database connection was lost", fix="retry"
            ) from exc
        raise PermanentBackendError(f"{what} failed: {_short(exc)}") from exc
    except SQLAlchemyError as exc:
        raise PermanentBackendError(f"{what} failed: {exc}") from exc


def _short(exc: DBAPIError) -> str:
    text = str(exc.orig).strip()
    return text.splitlines()[0] if text else type(exc.orig).__name__
