"""Add jobs.heartbeat_at: when the worker running a job last proved it is alive (the sweeper reads it).

Revision ID: 0004_heartbeat
Revises: 0001
Create Date: 2025-01-04
"""
from alembic import op
import sqlalchemy as sa

revision = "0004_heartbeat"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("heartbeat_at")
