"""Batch expansion: a worker turns a batch's source into items, page by page, never the request.

The request stores the source (a JSON manifest of item references, or the zip) under ``batches/<id>/`` (an S3
prefix needs nothing stored: its URL is the batch's source) and queues ``expand_batch``; it answers at once with
the batch ``expanding``. Each page (BATCH_CHUNK_SIZE items) is inserted in one transaction that also moves the
batch's resume point (``batches.expanded``), then queued. A redelivered or resent expansion starts at that point,
so no item is made twice and none is skipped. Items a page stored (zip entries) are deleted again when its insert
does not happen, so nothing is orphaned.

Per-key cap: while the owner has MAX_BATCH_ITEMS_IN_FLIGHT_PER_KEY batch items queued or running, expansion pauses
(``Paused``; the task retries later) and resumes where it stopped.
"""
from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import time
from itertools import islice
from typing import Any, Iterator

from face3d.shared import batch_sources, batches, jobs
from face3d.shared.batch_sources import Pending
from face3d.shared.config import Settings
from face3d.shared.db import SessionFactory
from face3d.shared.errors import ErrorCode, Face3dError
from face3d.shared.models import Batch
from face3d.shared.queue import JobQueue
from face3d.shared.storage import Storage, job_prefix

log = logging.getLogger(__name__)
MANIFEST = "items"              # batches.source of a JSON manifest
ARCHIVE_PREFIX = "archive:"     # ... of a zip upload ("archive:<file name>")
INFRASTRUCTURE = (ErrorCode.STORAGE_UNAVAILABLE, ErrorCode.DATABASE_UNAVAILABLE, ErrorCode.BROKER_UNAVAILABLE)


class Paused(Exception):
    """The owner is at its cap of batch items in flight; retry the expansion later."""


def source_key(batch_id: str, kind: str) -> str:
    return f"batches/{batch_id}/{'manifest.json' if kind == MANIFEST else 'source.zip'}"


def store_manifest(storage: Storage, batch_id: str, body: bytes) -> str:
    """The request body as it came (a JSON object with ``items``): re-encoding 400,000 items would cost the
    request more than reading them."""
    key = source_key(batch_id, MANIFEST)
    storage.put_bytes(key, body, content_type="application/json")
    return key


def expand(sf: SessionFactory, settings: Settings, storage: Storage, queue: JobQueue, batch_id: str,
           slice_s: float = math.inf) -> str:
    """Expand from the resume point to the end: "expanded", "failed" (the source is unusable: the reason is on the
    batch), "ignored" (gone, canceled or finished), or "continued" after ``slice_s`` seconds (the caller queues the
    rest, so no task runs into the job time limit). Raises Paused, and infrastructure errors (retried)."""
    batch = batches.find_batch(sf, batch_id)
    if batch is None or batch.expanded_at is not None or batch.canceled_at is not None:
        return "ignored"
    try:
        with _source(sf, settings, storage, batch) as items:
            outcome = _expand_pages(sf, settings, storage, queue, batch, items, time.monotonic() + slice_s)
    except Face3dError as exc:
        if exc.code in INFRASTRUCTURE:
            raise
        log.warning("batch %s: expansion stopped: %s", batch_id, exc.message)
        batches.finish_expansion(sf, batch_id, error=f"{exc.code.value}: {exc.message}")
        outcome = "failed"
    if outcome in ("expanded", "failed") and batch.source_key:
        storage.delete_prefix(batch.source_key)
    return outcome


def _expand_pages(sf: SessionFactory, settings: Settings, storage: Storage, queue: JobQueue, batch: Batch,
                  items: Iterator[Pending], deadline: float) -> str:
    start, in_flight = batch.expanded, _in_flight(sf, settings, batch)
    while page := list(islice(items, settings.batch_chunk_size)):
        if time.monotonic() > deadline:
            _forget(storage, page)
            return "continued"
        if settings.max_batch_items_in_flight_per_key and in_flight + len(page) > settings.max_batch_items_in_flight_per_key:
            in_flight = _in_flight(sf, settings, batch)     # items finished meanwhile?
            if in_flight + len(page) > settings.max_batch_items_in_flight_per_key:
                _forget(storage, page)
                batches.touch(sf, batch.id)
                raise Paused(f"batch {batch.id}: owner at {in_flight} batch items in flight")
        try:
            inserted = batches.add_expanded(sf, batch, [item for item, _ in page], start)
        except Exception:
            _forget(storage, page)
            raise
        if not inserted:
            _forget(storage, page)
            return "ignored"
        start, in_flight = start + len(page), in_flight + len(page)
        queue_page(sf, queue, batch, page, raise_on_broker=False)
    batches.finish_expansion(sf, batch.id)
    return "expanded"


def _in_flight(sf: SessionFactory, settings: Settings, batch: Batch) -> int:
    return batches.items_in_flight(sf, batch.owner_id) if settings.max_batch_items_in_flight_per_key else 0


def _forget(storage: Storage, page: list[Pending]) -> None:
    """Delete what a page stored for items that were not inserted (nothing references it)."""
    for item, _ in page:
        if item.input_key.startswith(job_prefix(item.job_id)):
            storage.delete_prefix(job_prefix(item.job_id))


def queue_page(sf: SessionFactory, queue: JobQueue, batch: Batch, page: list[Pending], *,
               raise_on_broker: bool = True) -> None:
    """Fail the page's items that already failed, send the others. A broker outage leaves them queued in the
    database (the sweeper resends what the queue lacks) unless ``raise_on_broker``: then they fail with it."""
    for item, error in page:
        if error is not None:
            jobs.mark_failed(sf, item.job_id, error.code, error.message)
    ready = [item.job_id for item, error in page if error is None]
    if not ready:
        return
    try:
        queue.send_items(ready, batch.engine)
    except Face3dError as exc:
        if not raise_on_broker:
            log.warning("batch %s: %d item(s) left for the sweeper to send: %s", batch.id, len(ready), exc.message)
            return
        unsent = ready[int(exc.details.get("sent", 0)):]
        jobs.fail_all(sf, unsent, ErrorCode.BROKER_UNAVAILABLE, exc.message)
        raise Face3dError(f"batch {batch.id}: {exc.message}; {len(unsent)} item(s) failed", exc.code) from exc


class _source:
    """The batch's items from its resume point, as a context manager (a zip is unpacked from a local copy)."""

    def __init__(self, sf: SessionFactory, settings: Settings, storage: Storage, batch: Batch) -> None:
        self.sf, self.settings, self.storage, self.batch = sf, settings, storage, batch
        self.spool: Any = None
        self.archive: Any = None

    def __enter__(self) -> Iterator[Pending]:
        batch, settings = self.batch, self.settings
        if batch.source.startswith("s3://"):
            return batch_sources.prefix_items(settings, batch.source, batch.expanded)
        if not batch.source_key:
            raise Face3dError(f"batch {batch.id} has no stored source", ErrorCode.INVALID_REQUEST)
        if batch.source == MANIFEST:
            raw = json.loads(self.storage.get_bytes(batch.source_key))
            return batch_sources.manifest_items(settings, raw.get("items"), batch.expanded)
        self.spool = tempfile.TemporaryFile(prefix="face3d-archive-")
        with self.storage.open_stream(batch.source_key) as stream:
            shutil.copyfileobj(stream, self.spool, 1024 * 1024)
        self.archive = batch_sources.open_archive(self.spool)
        batch_sources.check_archive(settings, self.archive)
        unpacked = batches.unpacked_bytes(self.sf, batch.id)
        return batch_sources.archive_items(settings, self.storage, self.archive, batch.expanded, unpacked)

    def __exit__(self, *exc: object) -> None:
        if self.archive is not None:
            self.archive.close()
        if self.spool is not None:
            self.spool.close()
