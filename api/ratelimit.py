"""Fixed-window rate limits per (bucket, subject), counted in Redis so every API process shares them.

Fixed windows (one INCR per request, the counter expires with its window) are what GitHub's API uses: cheap, exact
per window, and the answer maps directly onto the draft IETF headers (RateLimit-Limit / -Remaining / -Reset).
Without a Redis (the broker is not Redis, or tests with no broker) counters live in the process; if Redis stops
answering, the process counters take over rather than failing requests.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from face3d.shared.config import Settings

log = logging.getLogger(__name__)
KEY_PREFIX = "face3d:ratelimit"
REDIS_TIMEOUT_S = 0.5


@dataclass(frozen=True)
class Limit:
    count: int
    window_s: int


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int            # seconds until the window (and its counter) ends

    def headers(self) -> dict[str, str]:
        headers = {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining),
                   "RateLimit-Reset": str(self.reset_s)}
        if not self.allowed:
            headers["Retry-After"] = str(self.reset_s)
        return headers


class Limiter(Protocol):
    def hit(self, bucket: str, subject: str, limit: Limit) -> Decision: ...


def _window(limit: Limit, now: float) -> tuple[int, int]:
    """(index of the current window, whole seconds until it ends, at least 1)."""
    index = int(now // limit.window_s)
    return index, max(1, math.ceil((index + 1) * limit.window_s - now))


def _decision(count: int, limit: Limit, reset_s: int) -> Decision:
    return Decision(count <= limit.count, limit.count, max(0, limit.count - count), reset_s)


class MemoryLimiter:
    """Counters in this process (one API process, or tests without a broker)."""

    def __init__(self, clock=time.time) -> None:
        self._clock = clock
        self._counts: dict[tuple[str, str, int, int], int] = {}
        self._lock = threading.Lock()

    def hit(self, bucket: str, subject: str, limit: Limit) -> Decision:
        index, reset_s = _window(limit, self._clock())
        key = (bucket, subject, limit.window_s, index)
        with self._lock:
            self._drop_old_windows(index, limit.window_s)
            count = self._counts[key] = self._counts.get(key, 0) + 1
        return _decision(count, limit, reset_s)

    def _drop_old_windows(self, index: int, window_s: int) -> None:
        stale = [key for key in self._counts if key[2] == window_s and key[3] < index]
        for key in stale:
            del self._counts[key]


class RedisLimiter:
    """Counters in Redis: ``face3d:ratelimit:<bucket>:<subject>:<window>:<index>``, expiring with their window."""

    def __init__(self, url: str, fallback: MemoryLimiter | None = None, clock=time.time) -> None:
        self.url = url
        self._clock = clock
        self._client = None
        self._fallback = fallback or MemoryLimiter(clock)
        self._warned_at = 0.0

    def _redis(self):
        if self._client is None:
            import redis

            self._client = redis.Redis.from_url(self.url, socket_connect_timeout=REDIS_TIMEOUT_S,
                                                socket_timeout=REDIS_TIMEOUT_S)
        return self._client

    def hit(self, bucket: str, subject: str, limit: Limit) -> Decision:
        import redis

        index, reset_s = _window(limit, self._clock())
        key = f"{KEY_PREFIX}:{bucket}:{subject}:{limit.window_s}:{index}"
        try:
            pipe = self._redis().pipeline(transaction=True)
            pipe.incr(key)
            pipe.expire(key, limit.window_s + 1)
            count = int(pipe.execute()[0])
        except (redis.RedisError, OSError) as exc:
            self._warn(exc)
            return self._fallback.hit(bucket, subject, limit)
        return _decision(count, limit, reset_s)

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at > 60:
            self._warned_at = now
            log.warning("rate-limit Redis at %s unreachable (%s); counting in this process meanwhile", self.url, exc)


def make_limiter(settings: Settings) -> Limiter:
    """Redis from RATE_LIMIT_REDIS_URL, else the broker's Redis (the started one in `face3d serve`), else memory."""
    url = settings.rate_limit_redis_url
    if url is None and settings.broker_url.startswith(("redis://", "rediss://")):
        url = settings.broker_url
    return RedisLimiter(url) if url else MemoryLimiter()
