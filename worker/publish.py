"""A running job's honest progress, and its artifacts stored the moment they are written.

Progress: every stage has a weight close to its measured cost on a one-face photo (``make bench-engine``), so the
bar moves with the time spent; a stage that reports a fraction (render: frames done / total) advances inside its
span. The value never goes back (shared.jobs.report_progress keeps the larger value too) and stays below 1.0,
which only ``succeeded`` sets.

Artifacts: shared.artifacts.write_artifacts hands over each milestone's files (mesh + result.json, vis.png, the
videos, the final result.json); ``ArtifactPublisher`` uploads them and records the job's result so far: stored
files with ``ready: true`` and the planned rest with ``ready: false``, plus ``milestones`` (what is complete). A job
that fails after storing some files loses them all (``discard``): a failed job never shows partial output.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

from face3d.shared import db, jobs
from face3d.shared.artifacts import Written
from face3d.shared.storage import Storage, content_type_for

log = logging.getLogger(__name__)

# (stage, weight): the CPU engine's stages, then the writer's; "store" is the upload of each milestone.
STAGE_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("started", 0.0), ("load_engine", 2), ("decode", 5), ("detect", 33), ("landmarks", 11), ("mesh", 2),
    ("texture", 30), ("export", 30), ("store_mesh", 8), ("vis", 20), ("render", 50), ("encode", 50),
    ("face_videos", 60), ("gif", 30), ("upload", 5),
)
MAX_RUNNING_PROGRESS = 0.99
WRITE_EVERY_S = 0.1          # inside a stage (render frames), at most one progress write per this interval


def _spans() -> dict[str, tuple[float, float]]:
    total = sum(weight for _, weight in STAGE_WEIGHTS)
    spans, start = {}, 0.0
    for stage, weight in STAGE_WEIGHTS:
        spans[stage] = (start / total, weight / total)
        start += weight
    return spans


SPANS = _spans()


def overall_progress(stage: str, fraction: float | None, current: float) -> float:
    """The job's progress at ``stage`` (``fraction`` of it done); an unknown stage keeps ``current``."""
    if stage not in SPANS:
        return current
    start, width = SPANS[stage]
    value = start + width * min(max(fraction or 0.0, 0.0), 1.0)
    return min(max(value, current), MAX_RUNNING_PROGRESS)


class ArtifactPublisher:
    """``on_written`` of write_artifacts: stores each milestone's files and records the partial result."""

    def __init__(self, sf: db.SessionFactory, storage: Storage, job_id: str,
                 upload_all: Callable[[Storage, str, list[Path]], list[dict[str, Any]]],
                 summary: Callable[[Any, list[dict[str, Any]]], dict[str, Any]],
                 progress: Callable[..., None] | None = None) -> None:
        self.sf, self.storage, self.job_id = sf, storage, job_id
        self.upload_all, self.summary, self.progress = upload_all, summary, progress
        self.stored: dict[str, dict[str, Any]] = {}
        self.milestones: list[str] = []
        self.result: dict[str, Any] = {}
        self.started = time.perf_counter()

    def __call__(self, written: Written) -> None:
        if written.milestone == "mesh" and self.progress is not None:
            self.progress("store_mesh")
        for artifact in self.upload_all(self.storage, self.job_id, written.paths):
            self.stored[artifact["name"]] = {**artifact, "ready": True}
        if written.milestone not in self.milestones and not (written.milestone == "video" and written.pending):
            self.milestones.append(written.milestone)
        recon = written.reconstruction
        if written.milestone == "mesh":
            recon.timings_ms["mesh_ready"] = (time.perf_counter() - self.started) * 1000
        planned = [{"name": name, "key": None, "size": None, "content_type": content_type_for(name), "ready": False}
                   for name in written.pending if name not in self.stored]
        self.result = {**self.summary(recon, [*self.stored.values(), *planned]), "milestones": list(self.milestones)}
        if written.milestone != "done":
            jobs.record_partial_result(self.sf, self.job_id, self.result)

    def discard(self, remove: Callable[[], None]) -> None:
        """The job failed (or was canceled) after some files were stored: remove them and list none, so a failed
        job never shows partial output."""
        if not self.stored:
            return
        remove()
        self.stored.clear()
        try:
            jobs.record_partial_result(self.sf, self.job_id, None)
        except Exception:  # noqa: BLE001 - the job's own error is the one to report
            log.exception("job %s: its partial result could not be cleared", self.job_id)

