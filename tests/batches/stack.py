"""Helpers for the batch tests."""
from __future__ import annotations

import time
from pathlib import Path


def batch_job_count(sf, batch_id: str | None = None) -> int:
    import sqlalchemy as sa

    from face3d.shared.models import Job

    query = sa.select(sa.func.count()).select_from(Job)
    if batch_id is not None:
        query = query.where(Job.batch_id == batch_id)
    with sf() as session:
        return session.scalar(query)


def wait_until(predicate, timeout_s: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log else ""
    raise AssertionError(f"{what} did not happen within {timeout_s} s\n{tail}")
