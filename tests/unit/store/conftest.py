"""Fixtures: a migrated Store on SQLite (tmp_path) and on PostgreSQL (a fresh schema per test)."""

from __future__ import annotations

import getpass
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gs_engine.store import Store

PG_HOST, PG_PORT, PG_DB = "127.0.0.1", 5432, "test"
PG_SKIP = "PostgreSQL not reachable at 127.0.0.1:5432"


@dataclass
class StepClock:
    """A clock tests move by hand; every read returns the current instant."""

    now: datetime = field(default_factory=lambda: datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 1.0) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def _pg_user() -> str | None:
    """The first of `postgres` and the current user that can log in, or None if the server is down."""
    try:
        import psycopg
    except ImportError:
        return None
    for user in dict.fromkeys(["postgres", getpass.getuser()]):
        try:
            with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user=user, connect_timeout=3):
                return user
        except psycopg.OperationalError:
            continue
    return None


_PG_USER: list[str | None] = []


def pg_user() -> str | None:
    if not _PG_USER:
        _PG_USER.append(_pg_user())
    return _PG_USER[0]


@dataclass
class Database:
    """Where a test's store lives; `url` is what `Store(url)` is given."""

    backend: str
    url: str


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        yield Database("sqlite", f"sqlite:///{tmp_path / 'gse.db'}")
        return
    user = pg_user()
    if user is None:
        pytest.skip(PG_SKIP)
    import psycopg

    schema = f"gse_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user=user, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        # search_path puts every table, and Alembic's version table, in this test's own schema.
        url = f"postgresql+psycopg://{user}@{PG_HOST}:{PG_PORT}/{PG_DB}?options=-csearch_path%3D{schema}"
        yield Database("postgresql", url)
    finally:
        with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user=user, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
def store(database: Database, clock: StepClock) -> Iterator[Store]:
    s = Store(database.url, clock=clock)
    s.migrate()
    try:
        yield s
    finally:
        s.close()
