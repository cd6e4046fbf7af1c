"""Client-side bulk ingestion: a folder, zip, JSONL manifest or s3:// prefix in, a JSON Lines results file out.

Resumable by construction. Two files record progress, each written as soon as something happens:
- ``<output>.state`` (SQLite): the batch id and, per input name, the job the server made for it;
- ``<output>`` itself: one line per finished item, appended and flushed one by one.
A rerun after a crash or Ctrl-C uploads only names without a job and writes only names without a line; a name the
server already has is returned by it, not created again (POST /v1/batches/{id}/items is idempotent per name).
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from face3d.client.http import ApiError, ServerUnreachable
from face3d.shared.errors import Backoff, ErrorCode, Face3dError, retrying
from face3d.client.sources import SourceItem, is_s3, iter_items, read_item
from face3d.shared.schema import UniqueNames, failed_line

POLL_S = 1.0
MIN_POLL_S = 0.1
RESULTS_GROWTH = 0.1            # read the results once 10 % more items finished than lines are written ...
RESULTS_MAX_WAIT_S = 10.0       # ... or this long after the last read, whichever comes first
UPLOAD_ATTEMPTS = 5
UPLOAD_BACKOFF = Backoff(first_s=2.0, max_s=30.0)
RETRY_STATUSES = (429, 502, 503, 504)


@dataclass
class IngestReport:
    batch_id: str
    total: int
    uploaded: int = 0           # items sent to the server by this run
    written: int = 0            # result lines written by this run
    counts: dict[str, int] = field(default_factory=dict)    # state -> lines in the whole output file
    skipped: list[str] = field(default_factory=list)        # files of a folder or zip that are not photos

    @property
    def failed(self) -> int:
        return sum(count for state, count in self.counts.items() if state != "succeeded")


# ---------------------------------------------------------------- resumable state


class IngestState:
    """The ``.state`` SQLite file: batch id, source, and the job id of every uploaded name."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path)
        # WAL without a sync per commit: a commit survives a crash of this process; losing the last ones to a power
        # cut only makes a rerun send those names again, which the server answers with the jobs it has.
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.db.execute("CREATE TABLE IF NOT EXISTS items (name TEXT PRIMARY KEY, job_id TEXT NOT NULL)")
        self.db.commit()

    def get(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
        self.db.commit()

    def uploaded(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT name, job_id FROM items"))

    def record_upload(self, name: str, job_id: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO items (name, job_id) VALUES (?, ?)", (name, job_id))
        self.db.commit()

    def close(self) -> None:
        self.db.close()


class ResultsFile:
    """The output JSON Lines file. On open, a torn last line (a crash mid-write) is cut off; names already there
    are done."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: dict[str, dict[str, Any]] = {}
        self.handle: Any = None         # opened at the first line, so a run that writes none leaves no file
        if path.exists():
            self._load()

    def _load(self) -> None:
        raw = self.path.read_bytes()
        keep = raw[: raw.rfind(b"\n") + 1]
        if len(keep) != len(raw):
            self.path.write_bytes(keep)
        for line in keep.decode("utf-8").splitlines():
            if line.strip():
                entry = json.loads(line)
                self.lines[entry["name"]] = entry

    def write(self, entry: dict[str, Any]) -> None:
        if self.handle is None:
            self.handle = self.path.open("a", encoding="utf-8")
        self.handle.write(json.dumps(entry) + "\n")
        self.handle.flush()
        self.lines[entry["name"]] = entry

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


def state_path(output: Path) -> Path:
    return output.with_name(output.name + ".state")


# ---------------------------------------------------------------- the run


class Ingest:
    """One ingestion run. ``client_factory`` makes a Face3dClient (one per upload thread)."""

    def __init__(self, source: str, output: Path, client_factory: Callable[[], Any], options: dict[str, Any],
                 concurrency: int = 4, progress: bool = True, poll_s: float = POLL_S) -> None:
        self.source, self.output, self.options = source, Path(output), options
        self.client_factory, self.concurrency, self.poll_s = client_factory, concurrency, poll_s
        self.show_progress = progress
        self.client = client_factory()
        self._local = threading.local()
        self.batch_id: str | None = None
        self.report: IngestReport | None = None
        self.skipped: list[str] = []

    def run(self, timeout_s: float | None = None) -> IngestReport:
        """Upload what is missing and collect every result line. The state file is made only once the server
        has made the batch, and the results file at its first line, so a run that fails early leaves nothing."""
        items = [] if is_s3(self.source) else self._local_items()
        state = self._open_state()
        results = ResultsFile(self.output)
        try:
            self.batch_id = state.get("batch_id")
            if is_s3(self.source):
                self.report = IngestReport(self.batch_id, total=self._expanded_total())
            else:
                self.report = self._upload_all(items, state, results, self.batch_id)
            self.report.skipped = self.skipped
            self._collect(results, self.report, timeout_s)
            self.report.counts = _count_states(results)
            return self.report
        finally:
            results.close()
            state.close()

    def _expanded_total(self) -> int:
        """The item count of a batch the server expands (an S3 prefix), once it has finished expanding."""
        while (batch := self.client.get_batch(self.batch_id))["state"] == "expanding":
            time.sleep(self.poll_s)
        return int(batch["total"])

    def _local_items(self) -> list[SourceItem]:
        names = UniqueNames()
        return [SourceItem(names(item.name), item.read, item.url, item.key)
                for item in iter_items(self.source, self.skipped)]

    def _open_state(self) -> IngestState:
        """The state of an earlier run of this output, or a new one for a batch made now."""
        path = state_path(self.output)
        if path.exists():
            state = IngestState(path)
            known = state.get("source")
            if known is not None and known != self.source:
                state.close()
                raise Face3dError(f"{self.output} belongs to an ingestion of {known}; choose another output file",
                                  ErrorCode.CONFLICT)
            if state.get("batch_id"):
                return state
            state.close()
        prefix = self.source if is_s3(self.source) else None
        batch_id = self.client.create_batch(self.options, s3_prefix=prefix, name=self.source[-255:])["id"]
        self.output.parent.mkdir(parents=True, exist_ok=True)
        state = IngestState(path)
        state.put("source", self.source)
        state.put("batch_id", batch_id)
        return state

    def interrupted_message(self) -> str:
        """What Ctrl-C leaves: the batch keeps running on the server; the same command resumes."""
        rerun = (f"rerun `face3d ingest {self.source} -o {self.output}` with the same options to resume "
                 "(finished items are not redone)")
        if self.batch_id is None:
            return f"interrupted before the server had a batch; {rerun}"
        try:
            batch = self.client.get_batch(self.batch_id)
        except Face3dError:
            return f"interrupted; batch {self.batch_id} stays on the server; {rerun}"
        counts = batch.get("counts", {})
        waiting = f"{counts.get('queued', 0)} queued and {counts.get('running', 0)} running"
        not_sent = ""
        if self.report is not None and self.report.total > batch["total"]:
            not_sent = f"; {self.report.total - batch['total']} photo(s) were not uploaded yet"
        return (f"interrupted: the server keeps working on batch {self.batch_id} ({waiting}, {batch['done']} of "
                f"{batch['total']} done){not_sent}; {rerun}")

    # ------------------------------------------------------------ uploads

    def _upload_all(self, items: list[SourceItem], state: IngestState, results: ResultsFile,
                    batch_id: str) -> IngestReport:
        report = IngestReport(batch_id, total=len(items))
        self.report = report
        uploaded = state.uploaded()
        todo = [item for item in items if item.name not in uploaded and item.name not in results.lines]
        bar = self._bar(len(items), len(items) - len(todo), "upload")
        pool = ThreadPoolExecutor(max_workers=self.concurrency)
        try:
            running: set[Future] = set()
            for item in todo:
                if len(running) >= 2 * self.concurrency:
                    running = self._drain(running, state, results, report, bar)
                running.add(pool.submit(self._upload, batch_id, item))
            while running:
                running = self._drain(running, state, results, report, bar)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)     # Ctrl-C: the uploads under way finish, no new one
            bar.close()
        return report

    def _drain(self, running: set[Future], state: IngestState, results: ResultsFile, report: IngestReport,
               bar: Any) -> set[Future]:
        finished, pending = wait(running, return_when=FIRST_COMPLETED)
        for future in finished:
            name, job_id, failure = future.result()
            if job_id is not None:
                state.record_upload(name, job_id)
                report.uploaded += 1
            else:
                results.write(failure)
                report.written += 1
            bar.update(1)
        return pending

    def _upload(self, batch_id: str, item: SourceItem) -> tuple[str, str | None, dict[str, Any] | None]:
        """(name, job id, None) once the server has it; (name, None, failure line) when it cannot be sent."""
        try:
            client = self._thread_client()
            if item.read is None:
                answer = _retrying(lambda: client.add_batch_reference(batch_id, item.name, url=item.url,
                                                                      key=item.key))
            else:
                data = read_item(item)
                answer = _retrying(lambda: client.add_batch_item(batch_id, item.name, data))
            return item.name, answer["job_id"], None
        except Face3dError as exc:
            if _transient(exc):     # the server's trouble, not the item's: stop; a rerun sends it again
                raise Face3dError(f"{item.name}: {exc.message}; rerun to continue", exc.code) from exc
            return item.name, None, failed_line(item.name, exc.code.value, exc.message)

    def _thread_client(self) -> Any:
        if not hasattr(self._local, "client"):
            self._local.client = self.client_factory()
        return self._local.client

    # ------------------------------------------------------------ results

    def _collect(self, results: ResultsFile, report: IngestReport, timeout_s: float | None) -> None:
        """Poll the batch; when more items finished than we have lines for, fetch the finished ones' lines."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        bar = self._bar(report.total, len(results.lines), "done")
        last_read = float("-inf")
        while len(results.lines) < report.total:
            batch = self.client.get_batch(report.batch_id)
            local_failures = sum(1 for line in results.lines.values() if line.get("job_id") is None)
            unwritten = batch["done"] + local_failures - len(results.lines)
            timed_out = deadline is not None and time.monotonic() > deadline
            stale = time.monotonic() - last_read >= RESULTS_MAX_WAIT_S
            if unwritten > 0 and (timed_out or stale or _enough_new(unwritten, len(results.lines), report.total)):
                self._write_results(results, report, bar)
                last_read = time.monotonic()
            elif timed_out:
                raise Face3dError(f"batch {report.batch_id}: {report.total - len(results.lines)} item(s) still "
                                  f"unfinished after {timeout_s:.0f} s; rerun to continue", ErrorCode.TIMEOUT)
            else:
                time.sleep(_poll_delay(self.poll_s, batch.get("eta_s")))
        bar.close()

    def _write_results(self, results: ResultsFile, report: IngestReport, bar: Any) -> None:
        for line in self.client.batch_results(report.batch_id, state="terminal"):
            if line["name"] not in results.lines:
                results.write(line)
                report.written += 1
                bar.update(1)

    def _bar(self, total: int, initial: int, what: str) -> Any:
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc=what, unit="photo", disable=not self.show_progress,
                    dynamic_ncols=True)


def _poll_delay(poll_s: float, eta_s: float | None) -> float:
    """The poll interval, shortened when the server expects the batch to finish sooner (so the end is noticed
    soon after it happens, not up to a whole interval later)."""
    return poll_s if eta_s is None else min(poll_s, max(MIN_POLL_S, eta_s))


def _enough_new(unwritten: int, written: int, total: int) -> bool:
    """Each read of the results returns every finished line again: reading at each poll would cost the server
    O(n) per poll, O(n²) per batch. So read when the unwritten lines are RESULTS_GROWTH of the written ones (or
    the rest of the batch), which keeps the total O(n)."""
    return unwritten >= min(max(1, int(written * RESULTS_GROWTH)), total - written)


def _transient(error: Face3dError) -> bool:
    return isinstance(error, ServerUnreachable) or (isinstance(error, ApiError) and error.status in RETRY_STATUSES)


def _retrying(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Retries rate limits, overloads and a briefly unreachable server; other errors are the item's own."""
    return retrying(call, attempts=UPLOAD_ATTEMPTS, backoff=UPLOAD_BACKOFF,
                    transient=lambda error: isinstance(error, Face3dError) and _transient(error))


def _count_states(results: ResultsFile) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in results.lines.values():
        counts[line["state"]] = counts.get(line["state"], 0) + 1
    return counts
