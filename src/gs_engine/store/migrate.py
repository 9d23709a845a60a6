"""Alembic, driven from code: the scripts ship inside the package, so no alembic.ini is needed."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine

from gs_engine.errors import PermanentBackendError
from gs_engine.store.engine import translate_errors

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the store ships at least one migration"
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for a database never migrated."""
    with translate_errors("reading the schema revision"), engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`; a database already there is left as it is."""
    config = alembic_config()
    try:
        with translate_errors("migrating the database"), engine.connect() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
            conn.commit()
    except CommandError as exc:
        raise PermanentBackendError(
            f"cannot migrate the database to {revision}: {exc}",
            fix="the database may have been migrated by a newer GS-Engine; upgrade GS-Engine or use a "
            "fresh database",
        ) from exc
