"""Outages are not the job's fault. A task that meets an unreachable database, storage or broker waits with backoff
and tries again, holding its (unacknowledged) message, so the queue is not drained while the outage lasts and no
job is failed for it; only the job's own problems (its input, its options, the engine on this photo) fail it.

Why retry in the worker rather than reject the message back to the broker: with acks_late a rejected message is
redelivered at once, so an idle worker would spin through the whole queue during an outage; one worker waiting on
one message leaves every other message where it is, and resumes within a backoff step (at most 2 s) of the
recovery. An outage longer than OUTAGE_RETRY_S hands the job back: requeued in the database when it can be
(the sweeper resends it), else left to the sweeper's heartbeat rule.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, TypeVar

import sqlalchemy as sa
from kombu.exceptions import KombuError, OperationalError as BrokerOperationalError

from face3d.shared.errors import Backoff, ErrorCode, Face3dError

log = logging.getLogger(__name__)
T = TypeVar("T")
OUTAGE_BACKOFF = Backoff(first_s=0.25, max_s=2.0)
OUTAGE_CODES = frozenset({ErrorCode.STORAGE_UNAVAILABLE, ErrorCode.DATABASE_UNAVAILABLE,
                          ErrorCode.BROKER_UNAVAILABLE})
_DATABASE_DOWN = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DisconnectionError, sa.exc.TimeoutError)


def is_outage(error: BaseException) -> bool:
    """Whether ``error`` says a service the worker depends on is unreachable (not that the job is bad)."""
    if isinstance(error, Face3dError):
        return error.code in OUTAGE_CODES
    if isinstance(error, _DATABASE_DOWN):
        return True
    if isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, (BrokerOperationalError, KombuError, ConnectionError))


class Outlasted(Exception):
    """The outage lasted longer than the worker's patience (OUTAGE_RETRY_S)."""


class Patience:
    """One job's budget for riding out outages: ``retry(call)`` calls until it works or the budget is spent."""

    def __init__(self, budget_s: float, job_id: str, backoff: Backoff = OUTAGE_BACKOFF,
                 sleep: Callable[[float], None] | None = None) -> None:
        self.job_id, self.backoff, self.sleep = job_id, backoff, sleep or time.sleep
        self.ends_at = time.monotonic() + budget_s
        self.waited_s = 0.0

    def retry(self, call: Callable[[], T]) -> T:
        failures = 0
        while True:
            try:
                return call()
            except Exception as exc:
                if not is_outage(exc):
                    raise
                failures += 1
                self._wait(exc, failures)

    def _wait(self, error: Exception, failures: int) -> None:
        delay = self.backoff.delay(failures)
        if time.monotonic() + delay > self.ends_at:
            raise Outlasted(f"still unreachable after {self.waited_s:.0f} s: {_short(error)}") from error
        if failures == 1 or failures % 10 == 0:
            log.warning("job %s: outage (%s); retrying every %.1f s at most", self.job_id, _short(error),
                        self.backoff.max_s)
        self.sleep(delay)
        self.waited_s += delay


def _short(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
