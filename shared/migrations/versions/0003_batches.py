"""Batches: the batches table, jobs.batch_id, and the indexes bulk ingestion and dedup-by-content need.

Revision ID: 0003_batches
Revises: 0001
Create Date: 2025-01-03
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0003_batches"
down_revision = "0001"
branch_labels = None
depends_on = None

_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner_id", sa.String(32), nullable=True),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("engine", sa.String(32), nullable=False),
        sa.Column("options", _json, nullable=False),
        sa.Column("source", sa.String(1024), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("canceled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_batches_owner_id_created_at", "batches", ["owner_id", "created_at"])
    with op.batch_alter_table("jobs") as jobs:
        jobs.add_column(sa.Column("batch_id", sa.String(32), nullable=True))
        jobs.create_index("ix_jobs_batch_id_state", ["batch_id", "state"])
        jobs.create_index("ix_jobs_batch_id_created_at_id", ["batch_id", "created_at", "id"])
        jobs.create_index("ix_jobs_input_sha256", ["input_sha256"])
        jobs.create_unique_constraint("uq_jobs_batch_id_input_name", ["batch_id", "input_name"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as jobs:
        jobs.drop_constraint("uq_jobs_batch_id_input_name", type_="unique")
        jobs.drop_index("ix_jobs_input_sha256")
        jobs.drop_index("ix_jobs_batch_id_created_at_id")
        jobs.drop_index("ix_jobs_batch_id_state")
        jobs.drop_column("batch_id")
    op.drop_index("ix_batches_owner_id_created_at", table_name="batches")
    op.drop_table("batches")
