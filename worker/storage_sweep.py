"""The storage sweep: files nothing references are deleted once older than ORPHAN_GRACE_S.

- ``jobs/<id>/...`` whose job has no row (an upload whose row insert failed, a worker killed between storing a zip
  entry and inserting its page, a deleted job whose files outlived it);
- ``batches/<id>/...`` (a stored manifest or zip) of a batch that is gone or no longer expanding;
- staging files (``.tmp-*``) a crash or a full disk left behind.

Anything else (``uploads/``, a shared bucket's other keys) is never touched. The grace period covers the moment
between storing a file and committing its row. Run by the sweeper every ORPHAN_SWEEP_INTERVAL_S, or once with
``face3d sweeper --once``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Iterator

from face3d.shared import batches, db, jobs
from face3d.shared.config import Settings
from face3d.shared.storage import Storage

log = logging.getLogger(__name__)
PAGE = 500
OWNED = {"jobs": jobs.existing_ids, "batches": batches.referenced}     # top folder -> which ids are still in use


@dataclass
class StorageSweepReport:
    removed: list[str] = field(default_factory=list)        # keys of orphaned objects deleted
    tmp_removed: list[str] = field(default_factory=list)    # stale staging files deleted

    def __str__(self) -> str:
        return f"storage sweep: {len(self.removed)} orphaned object(s), {len(self.tmp_removed)} staging file(s) removed"


def sweep_storage(sf: db.SessionFactory, settings: Settings, storage: Storage,
                  now: datetime | None = None) -> StorageSweepReport:
    now = now or db.utcnow()
    cutoff, report = now - timedelta(seconds=settings.orphan_grace_s), StorageSweepReport()
    old = (key for key, modified in storage.list_objects() if modified < cutoff)
    while page := list(islice(old, PAGE)):
        for key in page:
            if key.rsplit("/", 1)[-1].startswith(".tmp-"):
                storage.delete_prefix(key)
                report.tmp_removed.append(key)
        for key in _orphans([key for key in page if not key.rsplit("/", 1)[-1].startswith(".tmp-")], sf):
            storage.delete_prefix(key)
            report.removed.append(key)
    if report.removed or report.tmp_removed:
        log.warning("%s: %s", report, (report.removed + report.tmp_removed)[:20])
    return report


def _orphans(keys: list[str], sf: db.SessionFactory) -> Iterator[str]:
    owners: dict[str, dict[str, list[str]]] = {}          # top folder -> id -> its keys
    for key in keys:
        parts = key.split("/")
        if len(parts) >= 3 and parts[0] in OWNED:
            owners.setdefault(parts[0], {}).setdefault(parts[1], []).append(key)
    for folder, by_id in owners.items():
        in_use = OWNED[folder](sf, list(by_id))
        for owner_id, owned in by_id.items():
            if owner_id not in in_use:
                yield from owned
