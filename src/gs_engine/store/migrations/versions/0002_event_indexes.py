"""Indexes for listing events by namespace and by object, newest first.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_events_namespace_id", "events", ["namespace", "id"])
    op.create_index("ix_events_object_name_id", "events", ["object_name", "id"])


def downgrade() -> None:
    op.drop_index("ix_events_object_name_id", table_name="events")
    op.drop_index("ix_events_namespace_id", table_name="events")
