"""Initial tables: namespaces, services, routes, replicas, events, tokens.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _when(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "namespaces",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        _when("created_at"),
        sa.UniqueConstraint("name", name="uq_namespaces_name"),
    )
    op.create_table(
        "services",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("namespace", sa.String(253), nullable=False),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("revision", sa.String(128), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("observed_generation", sa.Integer(), nullable=False),
        sa.Column("status", sa.JSON(), nullable=False),
        sa.Column("deleting", sa.Boolean(), nullable=False),
        _when("created_at"),
        _when("updated_at"),
        sa.ForeignKeyConstraint(
            ["namespace"], ["namespaces.name"], name="fk_services_namespace", ondelete="RESTRICT"
        ),
        sa.UniqueConstraint("namespace", "name", name="uq_services_namespace_name"),
    )
    op.create_table(
        "routes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(253), nullable=False),
        sa.Column("path_prefix", sa.String(1024), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name="fk_routes_service_id", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("host", "path_prefix", name="uq_routes_host_path_prefix"),
    )
    op.create_index("ix_routes_service_id", "routes", ["service_id"])
    op.create_table(
        "replicas",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("replica_id", sa.String(253), nullable=False),
        sa.Column("namespace", sa.String(253), nullable=False),
        sa.Column("service", sa.String(253), nullable=False),
        sa.Column("revision", sa.String(128), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("ready", sa.Boolean(), nullable=False),
        sa.Column("host", sa.String(253), nullable=False),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("node", sa.String(253), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        _when("started_at", nullable=True),
        _when("updated_at"),
        sa.UniqueConstraint("replica_id", name="uq_replicas_replica_id"),
    )
    op.create_index("ix_replicas_namespace_service", "replicas", ["namespace", "service"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        _when("at"),
        sa.Column("namespace", sa.String(253), nullable=False),
        sa.Column("object_kind", sa.String(64), nullable=False),
        sa.Column("object_name", sa.String(253), nullable=False),
        sa.Column("controller", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(128), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("token_hash", sa.String(256), nullable=False),
        _when("created_at"),
        _when("last_used_at", nullable=True),
        sa.UniqueConstraint("name", name="uq_tokens_name"),
        sa.UniqueConstraint("token_hash", name="uq_tokens_token_hash"),
    )


def downgrade() -> None:
    for table in ("tokens", "events", "replicas", "routes", "services", "namespaces"):
        op.drop_table(table)
