"""The tables, as typed SQLAlchemy 2 models. Only the store package imports this module.

The Alembic revisions in `migrations/versions/` create exactly these tables; a test compares the
two so that a model change without a migration is caught.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no zone; this puts UTC back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware UTC datetime")
        value = value.astimezone(UTC)
        # SQLite stores text without an offset; keep it naive-UTC there so ordering stays lexical.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s",
        }
    )
    type_annotation_map = {dict[str, Any]: JSON, datetime: UTCDateTime}


class Namespace(Base):
    __tablename__ = "namespaces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(253), unique=True)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Service(Base):
    __tablename__ = "services"
    __table_args__ = (UniqueConstraint("namespace", "name", name="uq_services_namespace_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    namespace: Mapped[str] = mapped_column(
        String(253), ForeignKey("namespaces.name", ondelete="RESTRICT", name="fk_services_namespace")
    )
    name: Mapped[str] = mapped_column(String(253))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON)
    revision: Mapped[str] = mapped_column(String(128))
    generation: Mapped[int] = mapped_column(Integer)
    observed_generation: Mapped[int] = mapped_column(Integer)
    status: Mapped[dict[str, Any]] = mapped_column(JSON)
    deleting: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Route(Base):
    __tablename__ = "routes"
    __table_args__ = (UniqueConstraint("host", "path_prefix", name="uq_routes_host_path_prefix"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("services.id", ondelete="CASCADE", name="fk_routes_service_id"), index=True
    )
    # '' means any host; never NULL, so the unique constraint also holds for host-less routes.
    host: Mapped[str] = mapped_column(String(253))
    path_prefix: Mapped[str] = mapped_column(String(1024))


class Replica(Base):
    __tablename__ = "replicas"
    __table_args__ = (Index("ix_replicas_namespace_service", "namespace", "service"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    replica_id: Mapped[str] = mapped_column(String(253), unique=True)
    namespace: Mapped[str] = mapped_column(String(253))
    service: Mapped[str] = mapped_column(String(253))
    revision: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(32))
    ready: Mapped[bool] = mapped_column(Boolean)
    host: Mapped[str] = mapped_column(String(253))
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    node: Mapped[str] = mapped_column(String(253))
    attempt: Mapped[int] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_namespace_id", "namespace", "id"),
        Index("ix_events_object_name_id", "object_name", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    namespace: Mapped[str] = mapped_column(String(253))
    object_kind: Mapped[str] = mapped_column(String(64))
    object_name: Mapped[str] = mapped_column(String(253))
    controller: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(128))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class Token(Base):
    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(253), unique=True)
    token_hash: Mapped[str] = mapped_column(String(256), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
