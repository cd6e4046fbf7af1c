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
import zipfile
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from face3d.client.http import ApiError, ServerUnreachable
from face3d.shared.errors import Backoff, ErrorCode, Face3dError, retrying
from face3d.shared.schema import UniqueNames, failed_line

POLL_S = 1.0
MIN_POLL_S = 0.1
RESULTS_GROWTH = 0.1            # read the results once 10 % more items finished than lines are written ...
RESULTS_MAX_WAIT_S = 10.0       # ... or this long after the last read, whichever comes first
UPLOAD_ATTEMPTS = 5
UPLOAD_BACKOFF = Backoff(first_s=2.0, max_s=30.0)
RETRY_STATUSES = (429, 502, 503, 504)


@dataclass(frozen=True)
class SourceItem:
    """One input: its name in the results, and either a way to read its bytes or a reference the server reads."""

    name: str
    read: Callable[[], bytes] | None = None
    url: str | None = None
    key: str | None = None


@dataclass
class IngestReport:
    batch_id: str
    total: int
    uploaded: int = 0           # items sent to the server by this run
    written: int = 0            # result lines written by this run
    counts: dict[str, int] = field(default_factory=dict)    # state -> lines in the whole output file


# ---------------------------------------------------------------- sources


def is_s3(source: str) -> bool:
    return source.startswith("s3://")


def iter_items(source: str) -> Iterator[SourceItem]:
    """The items of a local source: a folder (recursively), a .zip, a .jsonl manifest, or a single file."""
    path = Path(source)
    if path.is_dir():
        yield from _folder_items(path)
    elif path.suffix.lower() == ".zip":
        yield from _zip_items(path)
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        yield from _manifest_items(path)
    elif path.is_file():
        yield SourceItem(path.name, read=path.read_bytes)
    else:
        raise Face3dError(f"{source} is not a folder, .zip, .jsonl manifest, file or s3:// prefix",
                          ErrorCode.INVALID_REQUEST)


def _folder_items(folder: Path) -> Iterator[SourceItem]:
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            yield SourceItem(relative.as_posix(), read=path.read_bytes)


def _zip_items(path: Path) -> Iterator[SourceItem]:
    with zipfile.ZipFile(path) as archive:
        names = [info.filename for info in archive.infolist()
                 if not info.is_dir() and "__MACOSX" not in info.filename.split("/")]
    for name in names:
        yield SourceItem(name, read=lambda name=name: _read_zip_entry(path, name))


def _read_zip_entry(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read(name)


def _manifest_items(path: Path) -> Iterator[SourceItem]:
    """Lines like {"path": "photos/a.jpg"} (relative to the manifest), {"url": "s3://b/k"} or {"key": "uploads/k"},
    each with an optional "name". A broken line becomes an item that fails with the reason."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                yield _manifest_item(path.parent, number, line)


def _manifest_item(base: Path, number: int, line: str) -> SourceItem:
    try:
        entry = json.loads(line)
        if not isinstance(entry, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        return SourceItem(f"line {number}", read=_raiser(f"manifest line {number} is not valid JSON: {exc}"))
    name = entry.get("name")
    if entry.get("path"):
        file = base / entry["path"]
        return SourceItem(str(name or entry["path"]), read=file.read_bytes)
    if entry.get("url") or entry.get("key"):
        reference = entry.get("url") or entry.get("key")
        return SourceItem(str(name or reference.rsplit("/", 1)[-1]), url=entry.get("url"), key=entry.get("key"))
    return SourceItem(str(name or f"line {number}"), read=_raiser(f"manifest line {number} has no path, url or key"))


def _raiser(message: str) -> Callable[[], bytes]:
    def read() -> bytes:
        raise Face3dError(message, ErrorCode.INVALID_REQUEST)
    return read


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
        if path.exists():
            self._load()
        self.handle = path.open("a", encoding="utf-8")

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
        self.handle.write(json.dumps(entry) + "\n")
        self.handle.flush()
        self.lines[entry["name"]] = entry

    def close(self) -> None:
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

    def run(self, timeout_s: float | None = None) -> IngestReport:
        self.output.parent.mkdir(parents=True, exist_ok=True)
        state, results = IngestState(state_path(self.output)), ResultsFile(self.output)
        try:
            batch_id = self._batch(state)
            if is_s3(self.source):
                report = IngestReport(batch_id, total=int(self.client.get_batch(batch_id)["total"]))
            else:
                report = self._upload_all(state, results, batch_id)
            self._collect(results, report, timeout_s)
            report.counts = _count_states(results)
            return report
        finally:
            results.close()
            state.close()

    def _batch(self, state: IngestState) -> str:
        known = state.get("source")
        if known is not None and known != self.source:
            raise Face3dError(f"{self.output} belongs to an ingestion of {known}; choose another output file",
                              ErrorCode.CONFLICT)
        batch_id = state.get("batch_id")
        if batch_id is None:
            name = self.source[-255:]
            prefix = self.source if is_s3(self.source) else None
            batch_id = self.client.create_batch(self.options, s3_prefix=prefix, name=name)["id"]
            state.put("source", self.source)
            state.put("batch_id", batch_id)
        return batch_id

    # ------------------------------------------------------------ uploads

    def _upload_all(self, state: IngestState, results: ResultsFile, batch_id: str) -> IngestReport:
        names = UniqueNames()
        items = [SourceItem(names(item.name), item.read, item.url, item.key) for item in iter_items(self.source)]
        report = IngestReport(batch_id, total=len(items))
        uploaded = state.uploaded()
        todo = [item for item in items if item.name not in uploaded and item.name not in results.lines]
        bar = self._bar(len(items), len(items) - len(todo), "upload")
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            running: set[Future] = set()
            for item in todo:
                if len(running) >= 2 * self.concurrency:
                    running = self._drain(running, state, results, report, bar)
                running.add(pool.submit(self._upload, batch_id, item))
            while running:
                running = self._drain(running, state, results, report, bar)
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
                data = _read(item)
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


def _read(item: SourceItem) -> bytes:
    try:
        return item.read()  # type: ignore[misc]
    except OSError as exc:
        raise Face3dError(f"cannot read {item.name}: {exc.strerror or exc}", ErrorCode.INVALID_REQUEST) from exc
    except zipfile.BadZipFile as exc:
        raise Face3dError(f"cannot unpack {item.name}: {exc}", ErrorCode.INVALID_REQUEST) from exc


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
