"""Environment tags, open sessions, webhooks and their delivery log.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

Open sessions hold no values: reading one evaluates the recorded revision again.
Webhooks deliver what the audit log records: a webhook's cursor (``last_seq``) moves
along the audit chain, so an event is never lost between a change and its delivery.
The webhook signing secret is stored wrapped by the master key.
"""

from __future__ import annotations

__all__ = ["branch_labels", "depends_on", "down_revision", "downgrade", "revision", "upgrade"]

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def _name() -> sa.types.TypeEngine[str]:
    return sa.String(100).with_variant(sa.String(100, collation="C"), "postgresql")


def _seq() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "environment_tags",
        sa.Column("env_id", sa.Integer(), nullable=False),
        sa.Column("name", _name(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("env_id", "name", name="pk_environment_tags"),
        sa.ForeignKeyConstraint(["env_id"], ["environments.id"], name="fk_environment_tags_env_id", ondelete="CASCADE"),
    )
    op.create_table(
        "open_sessions",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("project", _name(), nullable=False),
        sa.Column("name", _name(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name="pk_open_sessions"),
    )
    op.create_index("ix_open_sessions_expires_at", "open_sessions", ["expires_at"])
    op.create_table(
        "webhooks",
        sa.Column("webhook_id", sa.String(32), nullable=False),
        sa.Column("environment", sa.String(201), nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("events", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("last_seq", _seq(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("webhook_id", name="pk_webhooks"),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("delivery_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("webhook_id", sa.String(32), nullable=False),
        sa.Column("audit_seq", _seq(), nullable=False),
        sa.Column("event", sa.String(100), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Text(), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("delivery_id", name="pk_webhook_deliveries"),
        sa.UniqueConstraint("webhook_id", "audit_seq", name="uq_webhook_deliveries_event"),
        sa.ForeignKeyConstraint(
            ["webhook_id"], ["webhooks.webhook_id"], name="fk_webhook_deliveries_webhook", ondelete="CASCADE"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_due", "webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
    op.drop_index("ix_open_sessions_expires_at", "open_sessions")
    op.drop_table("open_sessions")
    op.drop_table("environment_tags")
