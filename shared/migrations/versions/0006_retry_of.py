"""Add jobs.retry_of: the failed job a retry (POST /v1/jobs/{id}/retry) resubmitted.

Revision ID: 0006_retry_of
Revises: 0005_merge
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_retry_of"
down_revision = "0005_merge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("retry_of", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("retry_of")
