"""Merge the feature branches (API keys and webhooks, batches, heartbeats) back into one line.

Revision ID: 0005_merge
Revises: 0002_auth, 0003_batches, 0004_heartbeat
"""
from __future__ import annotations

revision = "0005_merge"
down_revision = ("0002_auth", "0003_batches", "0004_heartbeat")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
