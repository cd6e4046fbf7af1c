"""Rate limits per (bucket, subject) as GCRA, the generic cell rate algorithm (a token bucket kept as one timestamp),
counted in Redis so every API process shares them.

``count`` per ``window_s`` means: a burst of up to ``count`` at once, then one more every ``window_s / count``
seconds. Unlike a fixed window there is no boundary to straddle (a fixed window let 2 x count through in a few
seconds around it). Each subject keeps one value, its theoretical arrival time (TAT); a request is allowed when the
TAT it would move to is at most ``window_s`` ahead of now. The answer maps onto the draft IETF headers
(RateLimit-Limit / -Remaining / -Reset, Retry-After when refused). Without a Redis (the broker is not Redis, or tests
with no broker) the TATs live in the process; if Redis stops answering, the process takes over rather than failing
requests.
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
# KEYS[1]: the subject's TAT; ARGV: now, emission interval, window, 1 to take a cell (0 only to look).
# Returns {allowed (0/1), the TAT after this request} (as a string: Lua numbers would come back as integers).
_GCRA_SCRIPT = """
local now, interval, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now > window then return {0, tostring(tat)} end
if ARGV[4] == '1' then
  redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil((new_tat - now) * 1000))
  return {1, tostring(new_tat)}
end
return {1, tostring(tat)}
"""


@dataclass(frozen=True)
class Limit:
    count: int
    window_s: int

    @property
    def interval_s(self) -> float:
        return self.window_s / self.count


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int            # allowed: seconds until the whole burst is available again; refused: until the next cell

    def headers(self) -> dict[str, str]:
        headers = {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining),
                   "RateLimit-Reset": str(self.reset_s)}
        if not self.allowed:
            headers["Retry-After"] = str(self.reset_s)
        return headers


class Limiter(Protocol):
    def hit(self, bucket: str, subject: str, limit: Limit) -> Decision: ...
    def peek(self, bucket: str, subject: str, limit: Limit) -> Decision: ...


def _decision(allowed: bool, tat: float, now: float, limit: Limit) -> Decision:
    """The answer for a subject whose TAT is ``tat`` after this request (or, refused, before it)."""
    ahead = max(0.0, tat - now)
    if not allowed:
        return Decision(False, limit.count, 0, max(1, math.ceil(ahead + limit.interval_s - limit.window_s)))
    remaining = math.floor((limit.window_s - ahead) / limit.interval_s + 1e-6)
    return Decision(True, limit.count, max(0, min(limit.count, remaining)), max(1, math.ceil(ahead)))


def _gcra(stored: float | None, now: float, limit: Limit) -> tuple[bool, float]:
    """(allowed, the TAT after the request) from the stored TAT: the same steps as _GCRA_SCRIPT."""
    tat = max(stored if stored is not None else now, now)
    new_tat = tat + limit.interval_s
    if new_tat - now > limit.window_s:
        return False, tat
    return True, new_tat


class MemoryLimiter:
    """TATs in this process (one API process, or tests without a broker)."""

    def __init__(self, clock=time.time) -> None:
        self._clock = clock
        self._tats: dict[tuple[str, str, int], float] = {}
        self._lock = threading.Lock()

    def hit(self, bucket: str, subject: str, limit: Limit) -> Decision:
        return self._take(bucket, subject, limit, take=True)

    def peek(self, bucket: str, subject: str, limit: Limit) -> Decision:
        """Would a request be allowed now? (Nothing is taken.)"""
        return self._take(bucket, subject, limit, take=False)

    def _take(self, bucket: str, subject: str, limit: Limit, *, take: bool) -> Decision:
        now, key = self._clock(), (bucket, subject, limit.window_s)
        with self._lock:
            self._drop_expired(now)
            stored = self._tats.get(key)
            allowed, tat = _gcra(stored, now, limit)
            if allowed and take:
                self._tats[key] = tat
        if allowed and not take:
            tat = max(stored if stored is not None else now, now)
        return _decision(allowed, tat, now, limit)

    def _drop_expired(self, now: float) -> None:
        if len(self._tats) > 10_000:
            for key in [key for key, tat in self._tats.items() if tat <= now]:
                del self._tats[key]


class RedisLimiter:
    """TATs in Redis: ``face3d:ratelimit:<bucket>:<subject>:<window>``, expiring when the bucket is full again."""

    def __init__(self, url: str, fallback: MemoryLimiter | None = None, clock=time.time) -> None:
        self.url = url
        self._clock = clock
        self._client = None
        self._script = None
        self._fallback = fallback or MemoryLimiter(clock)
        self._warned_at = 0.0

    def _gcra_script(self):
        if self._script is None:
            import redis

            self._client = redis.Redis.from_url(self.url, socket_connect_timeout=REDIS_TIMEOUT_S,
                                                socket_timeout=REDIS_TIMEOUT_S)
            self._script = self._client.register_script(_GCRA_SCRIPT)
        return self._script

    def hit(self, bucket: str, subject: str, limit: Limit) -> Decision:
        return self._call(bucket, subject, limit, take=True)

    def peek(self, bucket: str, subject: str, limit: Limit) -> Decision:
        return self._call(bucket, subject, limit, take=False)

    def _call(self, bucket: str, subject: str, limit: Limit, *, take: bool) -> Decision:
        import redis

        now = self._clock()
        key = f"{KEY_PREFIX}:{bucket}:{subject}:{limit.window_s}"
        try:
            allowed, tat = self._gcra_script()(keys=[key], args=[repr(now), repr(limit.interval_s),
                                                                 limit.window_s, "1" if take else "0"])
        except (redis.RedisError, OSError) as exc:
            self._warn(exc)
            return self._fallback.hit(bucket, subject, limit) if take else self._fallback.peek(bucket, subject, limit)
        return _decision(bool(int(allowed)), float(tat), now, limit)

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
