"""Webhook receivers cannot stall or bloat a worker: every attempt is a task on the webhooks queue (never inside the
job task), one attempt has one total deadline (WEBHOOK_TIMEOUT_S: connect + headers + reply), and the reply is read
up to a small cap and dropped. Receivers listen on 127.0.0.1 with WEBHOOK_ALLOW_PRIVATE=1."""
from __future__ import annotations

import base64
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from face3d.shared import webhooks
from tests.loopback import Trickling, loopback_server
from tests.security.conftest import webhook_worker

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
HUGE_BYTES = 128 * 1024 * 1024
DRIP_S, DRIPS = 0.1, 300          # a reply trickled over 30 s


class HostileReceiver(Trickling):
    DRIPS, DRIP_S = DRIPS, DRIP_S

    protocol_version = "HTTP/1.1"
    calls: list[str] = []

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        HostileReceiver.calls.append(self.path)
        try:
            if self.path == "/huge":
                self._huge()
            elif self.path == "/trickled-reply":
                self._head(200, DRIPS)
                self._drip(lambda i: b".")
            elif self.path == "/slow-headers":
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                self._drip(lambda i: f"X-Drip-{i}: {i}\r\n".encode())
            else:
                self._head(204, 0)
        except OSError:             # the worker hung up, as it should
            pass

    def _head(self, status: int, length: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def _huge(self) -> None:
        self._head(200, HUGE_BYTES)
        chunk = bytes(1 << 20)
        for _ in range(HUGE_BYTES // len(chunk)):
            self.wfile.write(chunk)


@pytest.fixture(scope="module")
def receiver() -> Iterator[str]:
    with loopback_server(HostileReceiver) as url:
        yield url


def post(url: str, timeout_s: float) -> int:
    target = webhooks.check_webhook_url(url, allow_private=True)
    body = b'{"type":"job.succeeded"}'
    return webhooks.post_pinned(target, body, webhooks.signed_headers(SECRET, "msg_x", body), timeout_s)


def test_a_huge_reply_is_read_up_to_the_cap_and_dropped(receiver):
    tracemalloc.start()
    try:
        started = time.monotonic()
        status = post(f"{receiver}/huge", timeout_s=5)
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 200
    assert peak < 4 * 1024 * 1024, f"delivery held {peak / 2**20:.0f} MiB of a {HUGE_BYTES >> 20} MiB reply"
    assert elapsed < 5


def test_a_trickled_reply_ends_at_the_deadline_with_its_status(receiver):
    started = time.monotonic()
    assert post(f"{receiver}/trickled-reply", timeout_s=1) == 200
    assert time.monotonic() - started < 1.5


def test_trickled_headers_are_a_failed_attempt_at_the_deadline(receiver):
    import urllib3

    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.HTTPError):
        post(f"{receiver}/slow-headers", timeout_s=1)
    assert time.monotonic() - started < 1.5


def test_the_job_task_queues_the_first_attempt_and_makes_no_request(session_factory, local_storage, make_app,
                                                                   callers, obama_bytes, receiver):
    from face3d.shared.config import load_settings
    from face3d.worker.context import WorkerContext
    from face3d.worker.webhooks import notify_finished
    from tests.api.fakes import finish_job, post_photo
    from tests.stubs import RecordingQueue

    client = make_app(WEBHOOK_ALLOW_PRIVATE="1").test_client()
    before = len(HostileReceiver.calls)
    job_id = post_photo(client, obama_bytes, headers=callers.a.headers,
                        webhook_url=f"{receiver}/ok").get_json()["id"]
    finish_job(session_factory, local_storage, job_id)
    queue = RecordingQueue()
    ctx = WorkerContext(load_settings(env={"WEBHOOK_ALLOW_PRIVATE": "1"}), session_factory, local_storage, queue)
    notify_finished(ctx, job_id, "succeeded")
    assert queue.webhooks == [(job_id, 1, 0)]
    assert len(HostileReceiver.calls) == before


# ---------------------------------------------------------------- the real stack


@pytest.fixture(scope="module")
def worker_stack(postgres_url, redis_url, tmp_path_factory):
    """One real `face3d worker` (solo pool: one job at a time) on cpu,webhooks, PostgreSQL, local storage."""
    folder = tmp_path_factory.mktemp("webhook-limits")
    with webhook_worker(postgres_url, folder, {"WEBHOOK_TIMEOUT_S": "2", "WEBHOOK_MAX_ATTEMPTS": "1"}) as stack:
        yield stack


def test_a_trickling_receiver_does_not_delay_the_next_job(worker_stack, receiver, faces_dir: Path):
    import psutil

    from face3d.api.app import create_app
    from face3d.shared.queue import JobQueue
    from face3d.shared.storage import make_storage
    from tests.api.fakes import post_photo
    from tests.security.conftest import new_caller
    from tests.service.workers import wait_terminal

    settings, sf, log_path, process = worker_stack
    client = create_app(settings, session_factory=sf, storage=make_storage(settings),
                        queue=JobQueue.from_settings(settings)).test_client()
    caller = new_caller(sf, name=f"limits-{uuid.uuid4().hex[:6]}")
    photo = (faces_dir / "f_noface_grass.jpg").read_bytes()          # quick: fails no_face_detected
    options = {"video": False, "texture_size": 256}

    def submit(**extra: object) -> str:
        response = post_photo(client, photo, headers=caller.headers, options={**options, **extra})
        assert response.status_code == 202, response.get_data(as_text=True)
        return response.get_json()["id"]

    warm = wait_terminal(sf, submit(), log_path, timeout_s=120)       # engine loaded, RSS settled
    rss_before = psutil.Process(process.pid).memory_info().rss
    hooked = submit(webhook_url=f"{receiver}/trickled-reply")
    huge = submit(webhook_url=f"{receiver}/huge")
    follower = submit()
    done = [wait_terminal(sf, job_id, log_path, timeout_s=120) for job_id in (hooked, huge, follower)]
    gap_s = (done[2].finished_at - done[0].finished_at).total_seconds()
    assert gap_s < 8, f"the next job finished {gap_s:.1f} s after the hooked one (receiver trickles for 30 s)"
    deliveries = _deliveries(sf, [hooked, huge], timeout_s=30)
    assert {d.job_id: d.status_code for d in deliveries} == {hooked: 200, huge: 200}
    grown = (psutil.Process(process.pid).memory_info().rss - rss_before) / 2**20
    assert grown < 64, f"worker RSS grew {grown:.0f} MiB delivering a {HUGE_BYTES >> 20} MiB reply"
    assert warm.state.value == "failed"


def _deliveries(sf, job_ids: list[str], timeout_s: float) -> list:
    deadline = time.monotonic() + timeout_s
    while True:
        rows = [row for job_id in job_ids for row in webhooks.list_deliveries(sf, job_id)]
        if len(rows) >= len(job_ids) or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_the_first_attempt_is_queued_once_a_broker_outage_ends(session_factory, local_storage, make_app, callers,
                                                               obama_bytes, receiver, monkeypatch):
    from kombu.exceptions import OperationalError

    from face3d.shared.config import load_settings
    from face3d.worker import outages
    from face3d.worker.context import WorkerContext
    from face3d.worker.webhooks import notify_finished
    from tests.api.fakes import finish_job, post_photo
    from tests.stubs import RecordingQueue

    class BrokerBack(RecordingQueue):
        failures = 3

        def retry_webhook(self, job_id, attempt=1, countdown=0):
            if self.failures:
                self.failures -= 1
                raise OperationalError("Connection refused (stub)")
            super().retry_webhook(job_id, attempt, countdown)

    monkeypatch.setattr(outages.time, "sleep", lambda seconds: None)
    client = make_app(WEBHOOK_ALLOW_PRIVATE="1").test_client()
    job_id = post_photo(client, obama_bytes, headers=callers.a.headers,
                        webhook_url=f"{receiver}/ok").get_json()["id"]
    finish_job(session_factory, local_storage, job_id)
    queue = BrokerBack()
    ctx = WorkerContext(load_settings(env={"WEBHOOK_ALLOW_PRIVATE": "1"}), session_factory, local_storage, queue)
    notify_finished(ctx, job_id, "succeeded")
    assert queue.webhooks == [(job_id, 1, 0)] and queue.failures == 0
