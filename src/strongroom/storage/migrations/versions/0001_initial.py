"""The initial schema: environments, revisions, revision tags and store metadata.

Revision ID: 0001
Revises:
Create Date: 2026-11-29

Names (project, environment, tag) compare byte-wise on every backend (``COLLATE "C"``
on PostgreSQL, SQLite's default BINARY), so listings sort the same everywhere and
keyset pagination runs on the unique index.
"""

from __future__ import annotations

__all__ = ["branch_labels", "depends_on", "down_revision", "downgrade", "revision", "upgrade"]

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def _name() -> sa.types.TypeEngine[str]:
    return sa.String(100).with_variant(sa.String(100, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "environments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project", _name(), nullable=False),
        sa.Column("name", _name(), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("latest_revision", sa.Integer(), nullable=False),
        sa.Column("data_key", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_environments"),
        sa.UniqueConstraint("project", "name", name="uq_environments_project_name"),
        sa.CheckConstraint("latest_revision >= 1", name="ck_environments_latest_revision"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "revisions",
        sa.Column("env_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("compiled", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("env_id", "number", name="pk_revisions"),
        sa.ForeignKeyConstraint(["env_id"], ["environments.id"], name="fk_revisions_env_id", ondelete="CASCADE"),
        sa.CheckConstraint("number >= 1", name="ck_revisions_number"),
    )
    op.create_table(
        "revision_tags",
        sa.Column("env_id", sa.Integer(), nullable=False),
        sa.Column("name", _name(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("env_id", "name", name="pk_revision_tags"),
        sa.ForeignKeyConstraint(["env_id"], ["environments.id"], name="fk_revision_tags_env_id", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["env_id", "revision"],
            ["revisions.env_id", "revisions.number"],
            name="fk_revision_tags_revision",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "store_meta",
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_store_meta"),
    )


def downgrade() -> None:
    op.drop_table("store_meta")
    op.drop_table("revision_tags")
    op.drop_table("revisions")
    op.drop_table("environments")
