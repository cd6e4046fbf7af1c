"""Batch expansion in a worker: batches.source_key, expanded (resume point), expanded_at, expand_error. Batches
made before it were expanded in the request: expanded_at = created_at.

Revision ID: 0007_batch_expansion
Revises: 0006_retry_of
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0007_batch_expansion"
down_revision = "0006_retry_of"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("batches", sa.Column("source_key", sa.String(1024), nullable=True))
    op.add_column("batches", sa.Column("expanded", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("batches", sa.Column("expanded_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("batches", sa.Column("expand_error", sa.Text(), nullable=True))
    op.execute("UPDATE batches SET expanded_at = created_at, expanded = total")


def downgrade() -> None:
    with op.batch_alter_table("batches") as batch:
        for column in ("expand_error", "expanded_at", "expanded", "source_key"):
            batch.drop_column(column)
