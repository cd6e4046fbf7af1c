"""Signed webhooks: signature checked by an independent implementation, SSRF refusals, recorded attempts with a
retry after a 500, and the whole path on the real stack (API -> Redis -> a real `face3d worker` -> PostgreSQL ->
a real HTTP receiver)."""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from face3d.client.http import verify
from face3d.shared import webhooks
from tests.api.fakes import assert_problem, finish_job, post_photo
from tests.security.conftest import webhook_worker
from tests.stubs import RecordingQueue

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def independent_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """Standard Webhooks, written from the spec: base64(HMAC-SHA256(base64decode(secret - 'whsec_'), id.ts.body))."""
    key = base64.b64decode(secret.split("_", 1)[1])
    mac = hmac.new(key, msg_id.encode() + b"." + timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


class Receiver:
    """A real HTTP server in a thread that answers with ``statuses`` in turn (the last one repeats)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.received: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = outer.statuses.pop(0) if len(outer.statuses) > 1 else outer.statuses[0]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def __enter__(self) -> "Receiver":
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.received) >= count, f"got {len(self.received)} of {count} webhook calls"


def assert_signed(headers: dict[str, str], body: bytes, secret: str) -> None:
    expected = independent_signature(secret, headers["webhook-id"], headers["webhook-timestamp"], body)
    assert expected in headers["webhook-signature"].split(" ")
    assert abs(time.time() - int(headers["webhook-timestamp"])) < 120


# ---------------------------------------------------------------- signing and SSRF rules


def test_signature_matches_an_independent_implementation():
    body = b'{"type":"job.succeeded","data":{"id":"abc"}}'
    headers = webhooks.signed_headers(SECRET, "msg_abc", body, timestamp=1_700_000_000)
    assert headers["webhook-signature"] == independent_signature(SECRET, "msg_abc", "1700000000", body)
    assert verify(SECRET, headers, body, now=1_700_000_010)                  # the receiver's check (client)
    assert not verify(SECRET, headers, body + b" ", now=1_700_000_010)
    assert not verify(SECRET, headers, body, now=1_700_009_999)      # replayed long after


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/hook", "http://localhost/hook", "http://10.1.2.3/hook", "http://192.168.0.10/",
    "http://169.254.169.254/latest/meta-data/", "http://[::1]/hook", "http://[::ffff:127.0.0.1]/hook",
    "http://[fe80::1]/", "http://0.0.0.0/", "http://224.0.0.1/", "ftp://93.184.216.34/hook", "file:///etc/passwd",
    "http://user:pw@93.184.216.34/hook", "not a url",
])
def test_private_or_odd_webhook_urls_are_refused(make_app, callers, obama_bytes, url):
    client = make_app().test_client()
    body = assert_problem(post_photo(client, obama_bytes, headers=callers.a.headers, webhook_url=url),
                          422, "url_not_allowed")
    assert "webhook_url" in body["detail"]


def test_public_webhook_url_is_accepted_and_shown(make_app, callers, obama_bytes):
    client = make_app().test_client()
    response = post_photo(client, obama_bytes, headers=callers.a.headers,
                          options={"webhook_url": "https://93.184.216.34/hooks/face3d"})
    assert response.status_code == 202
    assert response.get_json()["webhook_url"] == "https://93.184.216.34/hooks/face3d"


def test_auth_off_needs_a_global_secret(session_factory, local_storage, tmp_path, obama_bytes):
    from face3d.api.app import create_app
    from face3d.shared.config import load_settings

    def app_with(env):
        return create_app(load_settings(env=env, data_dir=tmp_path), session_factory=session_factory,
                          storage=local_storage, queue=RecordingQueue()).test_client()

    url = "https://93.184.216.34/hook"
    body = assert_problem(post_photo(app_with({}), obama_bytes, webhook_url=url), 422, "validation_failed")
    assert "WEBHOOK_SECRET" in body["detail"]
    assert post_photo(app_with({"WEBHOOK_SECRET": SECRET}), obama_bytes, webhook_url=url).status_code == 202


# ---------------------------------------------------------------- delivery attempts (no broker)


def test_attempts_are_recorded_and_retried_after_a_500(make_app, callers, obama_bytes, session_factory,
                                                       local_storage):
    from face3d.shared.config import load_settings

    settings = load_settings(env={"WEBHOOK_ALLOW_PRIVATE": "1", "WEBHOOK_BACKOFF_S": "2"})
    client = make_app(WEBHOOK_ALLOW_PRIVATE="1").test_client()
    with Receiver([500, 204]) as receiver:
        job_id = post_photo(client, obama_bytes, headers=callers.a.headers,
                            webhook_url=receiver.url).get_json()["id"]
        finish_job(session_factory, local_storage, job_id)
        first = webhooks.attempt_delivery(session_factory, settings, job_id, attempt=1)
        second = webhooks.attempt_delivery(session_factory, settings, job_id, attempt=2)
    assert (first.delivered, first.retry, first.status_code) == (False, True, 500)
    assert (second.delivered, second.status_code) == (True, 204)
    (h1, b1), (h2, b2) = receiver.received
    assert h1["webhook-id"] == h2["webhook-id"] == f"msg_{job_id}"
    for headers, body in receiver.received:
        assert_signed(headers, body, callers.a.webhook_secret)
    event = json.loads(b2)
    assert (event["type"], event["data"]["id"], event["data"]["state"]) == ("job.succeeded", job_id, "succeeded")
    deliveries = client.get(f"/v1/jobs/{job_id}/webhook-deliveries", headers=callers.a.headers).get_json()["items"]
    assert [(d["attempt"], d["status_code"]) for d in deliveries] == [(1, 500), (2, 204)]
    assert deliveries[0]["next_attempt_at"] and deliveries[1]["next_attempt_at"] is None
    assert deliveries[0]["error"] == "HTTP 500" and deliveries[1]["error"] is None


def test_private_address_is_refused_again_at_delivery(make_app, callers, obama_bytes, session_factory,
                                                      local_storage):
    from face3d.shared.config import load_settings

    client = make_app(WEBHOOK_ALLOW_PRIVATE="1").test_client()
    with Receiver([200]) as receiver:
        job_id = post_photo(client, obama_bytes, headers=callers.a.headers,
                            webhook_url=receiver.url).get_json()["id"]
        finish_job(session_factory, local_storage, job_id)
        outcome = webhooks.attempt_delivery(session_factory, load_settings(env={}), job_id, attempt=1)
    assert (outcome.delivered, outcome.retry) == (False, False)
    assert "private" in outcome.error and receiver.received == []
    rows = webhooks.list_deliveries(session_factory, job_id)
    assert [(row.attempt, row.status_code, row.next_attempt_at) for row in rows] == [(1, None, None)]


def is_public_address(address: str) -> bool:
    """The SSRF rule webhook URLs are checked with (shared.netguard's, tunnelled IPv4 forms unwrapped)."""
    import ipaddress

    from face3d.shared import netguard

    return netguard.address_refusal(ipaddress.ip_address(address), netguard.FetchPolicy(max_bytes=0)) is None


def test_public_address_rules():
    assert is_public_address("93.184.216.34") and is_public_address("2606:4700::1111")
    for address in ("127.0.0.1", "10.0.0.1", "172.16.5.4", "100.64.0.1", "169.254.169.254", "::1", "fc00::1",
                    "::ffff:10.0.0.1", "255.255.255.255", "240.0.0.1", "2002:7f00:1::1"):
        assert not is_public_address(address), address


# ---------------------------------------------------------------- the real stack


@pytest.fixture(scope="module")
def worker_stack(postgres_url, redis_url, tmp_path_factory):
    """A real `face3d worker` process on Redis (a neighbouring db of ours) + PostgreSQL + local storage."""
    folder = tmp_path_factory.mktemp("webhook-worker")
    with webhook_worker(postgres_url, folder, {"WEBHOOK_BACKOFF_S": "0.3", "WEBHOOK_TIMEOUT_S": "3"}) as stack:
        yield stack[:3]


def test_webhook_on_terminal_state_through_the_real_stack(worker_stack, faces_dir: Path):
    from face3d.api.app import create_app
    from face3d.shared.storage import make_storage
    from face3d.shared.queue import JobQueue
    from tests.security.conftest import new_caller

    settings, sf, log_path = worker_stack
    app = create_app(settings, session_factory=sf, storage=make_storage(settings),
                     queue=JobQueue.from_settings(settings))
    client = app.test_client()
    caller = new_caller(sf, name=f"hook-{uuid.uuid4().hex[:6]}")
    with Receiver([500, 200]) as receiver:
        response = post_photo(client, (faces_dir / "f_noface_grass.jpg").read_bytes(), headers=caller.headers,
                              options={"webhook_url": receiver.url, "video": False, "texture_size": 256})
        assert response.status_code == 202, response.get_data(as_text=True)
        job_id = response.get_json()["id"]
        try:
            receiver.wait_for(2, timeout_s=60)
        except AssertionError:
            raise AssertionError(log_path.read_text(errors="replace")[-3000:]) from None
    for headers, body in receiver.received:
        assert_signed(headers, body, caller.webhook_secret)
        assert headers["webhook-id"] == f"msg_{job_id}"
    event = json.loads(receiver.received[-1][1])
    assert event["type"] == "job.failed"
    assert (event["data"]["state"], event["data"]["error"]["code"]) == ("failed", "no_face_detected")
    deliveries = _wait_for_deliveries(client, job_id, caller.headers, count=2)
    assert [(d["attempt"], d["status_code"]) for d in deliveries] == [(1, 500), (2, 200)]
    gap_s = (_parse(deliveries[1]["started_at"]) - _parse(deliveries[0]["finished_at"]))
    assert gap_s >= 0.25        # the retry waited for its countdown (WEBHOOK_BACKOFF_S=0.3)


def _wait_for_deliveries(client, job_id: str, headers: dict[str, str], count: int) -> list[dict]:
    deadline = time.monotonic() + 10
    while True:
        items = client.get(f"/v1/jobs/{job_id}/webhook-deliveries", headers=headers).get_json()["items"]
        if len(items) >= count or time.monotonic() > deadline:
            return items
        time.sleep(0.05)


def _parse(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_cancel_of_a_queued_job_sends_its_webhook_task(make_app, callers, obama_bytes, redis_url):
    """A job the API itself finishes (canceled while queued) gets a delivery task like a worker-finished one."""
    import redis as redis_lib

    from face3d.api.app import create_app
    from face3d.shared.queue import WEBHOOK_TASK_NAME, JobQueue
    from tests.conftest import redis_url_with_offset

    broker = redis_url_with_offset(2)
    redis = redis_lib.Redis.from_url(broker)
    redis.flushdb()
    template = make_app(WEBHOOK_ALLOW_PRIVATE="1")
    services = template.extensions["face3d"]
    settings = dataclasses.replace(services.settings, broker_url=broker)
    app = create_app(settings, session_factory=services.session_factory, storage=services.storage,
                     queue=JobQueue.from_settings(settings))
    client = app.test_client()
    job_id = post_photo(client, obama_bytes, headers=callers.a.headers,
                        webhook_url="http://127.0.0.1:9/hook").get_json()["id"]
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=callers.a.headers).get_json()["state"] == "canceled"
    messages = [json.loads(raw) for raw in redis.lrange("webhooks", 0, -1)]
    assert [(m["headers"]["task"], json.loads(base64.b64decode(m["body"]))[0]) for m in messages] == [
        (WEBHOOK_TASK_NAME, [job_id])]
    redis.flushdb()
