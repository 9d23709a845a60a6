"""Backend failures reach callers as gs_engine.errors, never as SQLAlchemy or driver exceptions."""

from __future__ import annotations

from pathlib import Path

import pytest

from gs_engine.errors import GseError, InvalidInput, PermanentBackendError, TemporaryBackendError, Unsupported
from gs_engine.store import Store, normalize_url

from .conftest import Database


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgresql://u@db:5432/gse", "postgresql+psycopg"),
        ("postgres://u@db/gse", "postgresql+psycopg"),
        ("postgresql+psycopg://u@db/gse", "postgresql+psycopg"),
        ("sqlite:///tmp/gse.db", "sqlite"),
    ],
)
def test_urls_pick_the_supported_drivers(given: str, driver: str) -> None:
    assert normalize_url(given).drivername == driver


@pytest.mark.parametrize(
    ("given", "error"),
    [
        ("", InvalidInput),
        ("not a url", InvalidInput),
        ("mysql://u@db/gse", Unsupported),
        ("postgresql+asyncpg://u@db/gse", Unsupported),
    ],
)
def test_bad_urls_say_what_to_write(given: str, error: type[GseError]) -> None:
    with pytest.raises(error) as err:
        Store(given)
    assert err.value.field == "database_url" and err.value.fix


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_plain_postgresql_url_reaches_the_server(database: Database) -> None:
    with Store(database.url.replace("postgresql+psycopg://", "postgresql://")) as store:
        assert store.backend == "postgresql"
        store.migrate()
        assert store.list_namespaces() == []


def test_unmigrated_database_asks_for_a_migration(database: Database) -> None:
    with Store(database.url) as store, pytest.raises(PermanentBackendError) as err:
        store.list_services()
    assert "migrate" in err.value.fix


def test_unreachable_server_is_a_temporary_error() -> None:
    # port 9 (discard) on loopback: nothing listens there, so the connection is refused at once
    with Store("postgresql://nobody@127.0.0.1:9/gse") as store:
        with pytest.raises(TemporaryBackendError) as err:
            store.get_service("default", "digits")
        assert err.value.retryable
        with pytest.raises(TemporaryBackendError):
            store.migrate()


def test_missing_sqlite_folder_is_named_in_the_fix(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'missing-dir' / 'gse.db'}") as store:
        with pytest.raises(PermanentBackendError) as err:
            store.migrate()
        assert "folder" in err.value.fix


CALLS: list[tuple[str, tuple[object, ...]]] = [
    ("ensure_namespace", ("default",)),
    ("create_namespace", ("default",)),
    ("list_namespaces", ()),
    ("get_namespace", ("default",)),
    ("delete_namespace", ("default",)),
    ("apply_service", ("default", "d", {}, {}, "r", [("", "/d")])),
    ("get_service", ("default", "d")),
    ("list_services", ()),
    ("all_services", ()),
    ("scale_service", ("default", "d", 2)),
    ("mark_deleting", ("default", "d")),
    ("remove_service", ("default", "d")),
    ("update_status", ("default", "d", {}, 1)),
    ("list_routes", ()),
    ("sync_replicas", ("default", "d", [])),
    ("list_replicas", ()),
    ("add_event", ("default", "Service", "d", "c", "R", "m")),
    ("list_events", ()),
    ("prune_events", ()),
    ("add_token", ("admin", "h")),
    ("find_token", ("h",)),
    ("has_tokens", ()),
    ("list_tokens", ()),
    ("delete_token", ("admin",)),
]


def test_every_public_method_is_in_the_leak_check() -> None:
    public = {n for n in vars(Store) if not n.startswith("_") and callable(getattr(Store, n))}
    assert public - {name for name, _ in CALLS} == {"migrate", "close", "schema_revision"}


@pytest.mark.parametrize(("method", "args"), CALLS, ids=[name for name, _ in CALLS])
def test_no_backend_exception_leaks(database: Database, method: str, args: tuple[object, ...]) -> None:
    # never migrated, so every statement fails inside the backend
    with Store(database.url) as store, pytest.raises(PermanentBackendError) as err:
        getattr(store, method)(*args)
    assert "migrate" in err.value.fix
