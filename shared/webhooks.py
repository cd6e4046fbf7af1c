"""Webhooks on terminal job states, signed per Standard Webhooks (https://www.standardwebhooks.com/).

Each delivery POSTs ``{"type": "job.<state>", "timestamp": ..., "data": <the job as GET /v1/jobs/<id> shows it>}``
with the headers ``webhook-id`` (the same for every attempt, so receivers can drop duplicates), ``webhook-timestamp``
(unix seconds of this attempt) and ``webhook-signature``: ``v1,`` + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}"))
where key is the base64-decoded part of the ``whsec_...`` secret. Every attempt is one WebhookDelivery row
(shared/models.py).

Webhook URLs are a server-side request the client chooses, so the SSRF rules of shared.netguard apply: http(s) only,
every address the host resolves to must be public (checked when the job is submitted and again before each attempt),
the POST goes to the checked address (no DNS rebinding between check and connect), redirects are not followed.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
import urllib3

from face3d.shared import keys, netguard
from face3d.shared.config import Settings
from face3d.shared.db import SessionFactory, utcnow
from face3d.shared.errors import Backoff, FetchFailed, NotFound, UrlNotAllowed
from face3d.shared.jobs import get_job
from face3d.shared.models import Job, WebhookDelivery
from face3d.shared.schema import sign, webhook_event

MAX_URL_LENGTH = 2000
MAX_ERROR_LENGTH = 500
USER_AGENT = "face3d-webhooks/1"
REPLY_CAP_BYTES = 64 * 1024
REPLY_CHUNK = 16 * 1024


class WebhookUrlRefused(UrlNotAllowed):
    """The webhook URL is not an http(s) URL of a public host."""


# ---------------------------------------------------------------- signing


def signed_headers(secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {"content-type": "application/json", "user-agent": USER_AGENT,
            "webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, msg_id, timestamp, body)}


# ---------------------------------------------------------------- SSRF rules


def check_webhook_url(url: str, *, allow_private: bool) -> netguard.Target:
    """The checked target (host resolved, every address allowed); raise WebhookUrlRefused with the reason."""
    if len(url) > MAX_URL_LENGTH:
        raise WebhookUrlRefused(f"webhook_url is longer than {MAX_URL_LENGTH} characters")
    policy = netguard.FetchPolicy(max_bytes=0, max_redirects=0, allow_private=allow_private)
    try:
        return netguard.check_url(url, policy, netguard.system_resolver)
    except (UrlNotAllowed, FetchFailed) as exc:
        raise WebhookUrlRefused(f"webhook_url refused: {exc.message}") from None


def post_pinned(target: netguard.Target, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
    """POST to the already checked address, with the URL's host in Host / SNI / certificate check. Returns status.

    ``timeout_s`` is one deadline for the whole exchange (connect, send, status and headers, reply), so a receiver
    trickling its answer cannot hold the worker; the reply body is read up to REPLY_CAP_BYTES and dropped."""
    with netguard.Deadline(timeout_s) as deadline:
        pool = netguard.pinned_pool(target, timeout_s, deadline=deadline)
        try:
            response = pool.urlopen("POST", target.path, body=body,
                                    headers={**headers, "Host": netguard.host_header(target)},
                                    redirect=False, retries=False, assert_same_host=False, preload_content=False)
            if deadline.expired:        # the cut ended the headers early: no real answer
                raise urllib3.exceptions.TimeoutError("cut off")
            _drop_reply(response)
            response.close()
            return response.status
        except urllib3.exceptions.HTTPError:
            if deadline.expired:
                raise urllib3.exceptions.TimeoutError(f"no answer within {timeout_s:g} s") from None
            raise
        finally:
            pool.close()


def _drop_reply(response: urllib3.BaseHTTPResponse) -> None:
    """Read (and forget) at most REPLY_CAP_BYTES of the receiver's reply: the status is all that counts."""
    read = 0
    try:
        for chunk in response.stream(REPLY_CHUNK, decode_content=False):
            read += len(chunk)
            if read >= REPLY_CAP_BYTES:
                return
    except (urllib3.exceptions.HTTPError, OSError):
        return      # cut off by the deadline, or the receiver hung up after its status line: the status stands


# ---------------------------------------------------------------- delivery


@dataclass(frozen=True)
class AttemptOutcome:
    delivered: bool
    retry: bool             # worth another attempt (network error, non-2xx answer)
    status_code: int | None = None
    error: str | None = None


def message_id(job_id: str) -> str:
    return f"msg_{job_id}"


def backoff_s(settings: Settings, attempt: int) -> float:
    """Delay after failed attempt ``attempt`` (1-based): base, 2 x base, 4 x base, ..."""
    return Backoff(settings.webhook_backoff_s).delay(attempt)


def signing_secret(sf: SessionFactory, owner_id: str | None, settings: Settings) -> str | None:
    """The owning key's secret; the global WEBHOOK_SECRET for jobs without an owner (auth off)."""
    if owner_id is None:
        return settings.webhook_secret
    try:
        return keys.get_key(sf, owner_id).webhook_secret
    except NotFound:
        return settings.webhook_secret


def event_body(job: Job, settings: Settings) -> bytes:
    event = webhook_event(job, settings.public_base_url or "", timestamp=utcnow())
    return json.dumps(event, separators=(",", ":")).encode()


def attempt_delivery(sf: SessionFactory, settings: Settings, job_id: str, attempt: int) -> AttemptOutcome | None:
    """Make delivery attempt ``attempt`` for a finished job and record it. None: nothing to deliver."""
    try:
        job = get_job(sf, job_id)
    except NotFound:
        return None
    if not job.webhook_url or not job.is_terminal:
        return None
    started = utcnow()
    outcome = _post(sf, settings, job)
    retry_at = None
    if outcome.retry and attempt < settings.webhook_max_attempts:
        retry_at = utcnow() + timedelta(seconds=backoff_s(settings, attempt))
    _record(sf, job, attempt, started, outcome, retry_at)
    return outcome


def _post(sf: SessionFactory, settings: Settings, job: Job) -> AttemptOutcome:
    secret = signing_secret(sf, job.owner_id, settings)
    if not secret:
        return AttemptOutcome(False, False, error="no signing secret: set WEBHOOK_SECRET (AUTH_MODE=off)")
    try:
        target = check_webhook_url(job.webhook_url, allow_private=settings.webhook_allow_private)
    except WebhookUrlRefused as exc:
        return AttemptOutcome(False, False, error=exc.message[:MAX_ERROR_LENGTH])
    body = event_body(job, settings)
    try:
        status = post_pinned(target, body, signed_headers(secret, message_id(job.id), body),
                             settings.webhook_timeout_s)
    except urllib3.exceptions.HTTPError as exc:
        reason = getattr(exc, "reason", None) or exc
        return AttemptOutcome(False, True, error=f"{type(exc).__name__}: {reason}"[:MAX_ERROR_LENGTH])
    if 200 <= status < 300:
        return AttemptOutcome(True, False, status)
    return AttemptOutcome(False, True, status, f"HTTP {status}")


def _record(sf: SessionFactory, job: Job, attempt: int, started: datetime, outcome: AttemptOutcome,
            retry_at: datetime | None) -> None:
    row = WebhookDelivery(job_id=job.id, msg_id=message_id(job.id), attempt=attempt, url=job.webhook_url,
                          status_code=outcome.status_code, error=outcome.error, started_at=started,
                          finished_at=utcnow(), next_attempt_at=retry_at)
    try:
        with sf.begin() as session:
            session.add(row)
    except sa.exc.IntegrityError:
        pass    # the job was deleted meanwhile: nothing left to record it against


def list_deliveries(sf: SessionFactory, job_id: str) -> list[WebhookDelivery]:
    query = (sa.select(WebhookDelivery).where(WebhookDelivery.job_id == job_id)
             .order_by(WebhookDelivery.attempt, WebhookDelivery.id))
    with sf() as session:
        return list(session.scalars(query))
