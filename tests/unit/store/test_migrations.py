"""Migrations: idempotent, matching the models, and keeping rows on an existing database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from gs_engine.store import Store
from gs_engine.store.migrate import head_revision
from gs_engine.store.models import Base

from .conftest import Database, StepClock


def test_migrate_twice_is_harmless(database: Database, clock: StepClock) -> None:
    with Store(database.url, clock=clock) as store:
        assert store.schema_revision() is None
        store.migrate()
        store.apply_service("default", "digits", {"a": 1}, {}, "r1", [("", "/d")])
        store.migrate()
        assert store.schema_revision() == head_revision()
        assert store.get_service("default", "digits").spec == {"a": 1}
    with Store(database.url, clock=clock) as again:  # a restart migrates again
        again.migrate()
        assert [s.key for s in again.all_services()] == ["default/digits"]


def test_migrations_create_what_the_models_describe(database: Database) -> None:
    with Store(database.url) as store:
        store.migrate()
    engine = sa.create_engine(database.url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
    finally:
        engine.dispose()
    assert diff == []


def test_upgrade_of_an_existing_database_keeps_its_rows(database: Database, clock: StepClock) -> None:
    with Store(database.url, clock=clock) as old:
        old.migrate("0001")  # the schema an earlier release left behind
        assert old.schema_revision() == "0001"
        old.apply_service("team", "digits", {"service": {"replicas": 2}}, {"app": "d"}, "r1", [("", "/d")])
        old.update_status("team", "digits", {"ready": 2}, 1)
        old.add_event("team", "Service", "digits", "services", "Created", "made it")
        old.add_token("admin", "sha256:abc")

    with Store(database.url, clock=clock) as new:
        new.migrate()
        assert new.schema_revision() == head_revision() != "0001"
        record = new.get_service("team", "digits")
        assert (record.spec, record.labels, record.status, record.observed_generation) == (
            {"service": {"replicas": 2}},
            {"app": "d"},
            {"ready": 2},
            1,
        )
        assert [(r.service, r.path_prefix) for r in new.list_routes()] == [("digits", "/d")]
        assert [e.message for e in new.list_events()] == ["made it"]
        assert new.find_token("sha256:abc") is not None

    engine = sa.create_engine(database.url)
    try:
        indexes = {ix["name"] for ix in sa.inspect(engine).get_indexes("events")}
    finally:
        engine.dispose()
    assert {"ix_events_namespace_id", "ix_events_object_name_id"} <= indexes


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "gse.db"
    with Store(f"sqlite:///{path}") as store:
        store.migrate()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
