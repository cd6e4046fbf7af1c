"""Per-key rate limits (submits and reads counted apart, in Redis or in-process) and the queued+running cap."""
from __future__ import annotations

import pytest

from face3d.api.ratelimit import Limit, MemoryLimiter, RedisLimiter
from tests.api.fakes import assert_problem, finish_job, post_photo
from tests.conftest import free_port


def assert_rate_headers(response, limit: int, remaining: int, window_s: int) -> None:
    assert response.headers["RateLimit-Limit"] == str(limit)
    assert response.headers["RateLimit-Remaining"] == str(remaining)
    assert 1 <= int(response.headers["RateLimit-Reset"]) <= window_s


def test_submits_beyond_the_limit_get_429_with_headers(make_app, callers, obama_bytes):
    client = make_app(RATE_LIMIT_SUBMIT="3/minute").test_client()
    for remaining in (2, 1, 0):
        response = post_photo(client, obama_bytes, headers=callers.a.headers)
        assert response.status_code == 202
        assert_rate_headers(response, 3, remaining, 60)
    refused = post_photo(client, obama_bytes, headers=callers.a.headers)
    body = assert_problem(refused, 429, "rate_limited")
    assert "submit rate limit of 3" in body["detail"]
    assert_rate_headers(refused, 3, 0, 60)
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert post_photo(client, obama_bytes, headers=callers.b.headers).status_code == 202   # per key


def test_reads_are_limited_separately_from_submits(make_app, callers, obama_bytes):
    client = make_app(RATE_LIMIT_SUBMIT="1/minute", RATE_LIMIT_READ="4/minute").test_client()
    assert post_photo(client, obama_bytes, headers=callers.a.headers).status_code == 202
    assert_problem(post_photo(client, obama_bytes, headers=callers.a.headers), 429, "rate_limited")
    for remaining in (3, 2, 1, 0):     # the submit budget is spent, reads still pass
        response = client.get("/v1/jobs", headers=callers.a.headers)
        assert response.status_code == 200
        assert_rate_headers(response, 4, remaining, 60)
    body = assert_problem(client.get("/v1/jobs", headers=callers.a.headers), 429, "rate_limited")
    assert "read rate limit of 4" in body["detail"]
    assert client.get("/healthz").status_code == 200        # public endpoints are not counted


def test_queued_and_running_jobs_per_key_are_capped(make_app, callers, obama_bytes, session_factory, local_storage):
    client = make_app(MAX_ACTIVE_JOBS_PER_KEY="2").test_client()
    first = post_photo(client, obama_bytes, headers=callers.a.headers).get_json()["id"]
    assert post_photo(client, obama_bytes, headers=callers.a.headers).status_code == 202
    refused = post_photo(client, obama_bytes, headers=callers.a.headers)
    body = assert_problem(refused, 429, "too_many_active_jobs")
    assert "2 queued or running jobs (limit 2)" in body["detail"] and refused.headers["Retry-After"]
    assert post_photo(client, obama_bytes, headers=callers.b.headers).status_code == 202   # B has its own cap
    finish_job(session_factory, local_storage, first)
    assert post_photo(client, obama_bytes, headers=callers.a.headers).status_code == 202


def test_counters_live_in_redis_and_are_shared_by_api_processes(make_app, callers, redis_url, obama_bytes):
    env = {"RATE_LIMIT_READ": "3/minute", "RATE_LIMIT_REDIS_URL": redis_url}
    first, second = make_app(**env).test_client(), make_app(**env).test_client()
    assert first.get("/v1/jobs", headers=callers.a.headers).status_code == 200
    assert second.get("/v1/jobs", headers=callers.a.headers).status_code == 200
    assert first.get("/v1/jobs", headers=callers.a.headers).status_code == 200
    assert_problem(second.get("/v1/jobs", headers=callers.a.headers), 429, "rate_limited")
    import redis

    stored = redis.Redis.from_url(redis_url).keys(f"face3d:ratelimit:read:{callers.a.key_id}:*")
    assert len(stored) == 1


def test_memory_limiter_is_a_token_bucket():
    """GCRA: a burst of `count`, then one more every window/count seconds, and the whole burst after a quiet window."""
    now = [1000.0]
    limiter = MemoryLimiter(clock=lambda: now[0])
    limit = Limit(2, 10)
    assert [limiter.hit("read", "k", limit).allowed for _ in range(3)] == [True, True, False]
    assert limiter.hit("read", "k", limit).reset_s == 5             # the next cell, in window/count seconds
    now[0] = 1005.0
    assert [limiter.hit("read", "k", limit).allowed for _ in range(2)] == [True, False]
    now[0] = 1020.0
    fresh = limiter.hit("read", "k", limit)
    assert (fresh.allowed, fresh.remaining) == (True, 1)
    assert limiter.hit("read", "other", limit).remaining == 1


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_no_burst_of_twice_the_limit_around_a_window_boundary(backend, redis_url):
    """A fixed window let 2 x count through within a second around its boundary (59 of 30/minute in 3.3 s)."""
    now = [6000.0 - 0.5]                             # half a second before a minute boundary
    clock = lambda: now[0]                          # noqa: E731
    limiter = MemoryLimiter(clock=clock) if backend == "memory" else RedisLimiter(redis_url, clock=clock)
    limit, subject = Limit(30, 60), f"boundary-{backend}-{now[0]}"
    allowed = 0
    for step in range(120):                          # 120 submits in 1 s, straddling the boundary
        now[0] = 6000.0 - 0.5 + step / 120
        allowed += limiter.hit("submit", subject, limit).allowed
    assert allowed <= 31, allowed


def test_failed_authentications_are_limited_per_address(make_app, callers):
    client = make_app(RATE_LIMIT_AUTH_FAILURES="3/minute", RATE_LIMIT_READ="off").test_client()
    bad = {"Authorization": "Bearer f3d_not-a-key"}
    assert [client.get("/v1/jobs", headers=bad).status_code for _ in range(3)] == [401, 401, 401]
    refused = client.get("/v1/jobs", headers=bad)
    body = assert_problem(refused, 429, "rate_limited")
    assert "failed authentications" in body["detail"] and int(refused.headers["Retry-After"]) >= 1
    assert client.get("/v1/jobs").status_code == 429                       # no key at all: the same address
    other = client.get("/v1/jobs", headers=bad, environ_base={"REMOTE_ADDR": "127.0.0.2"})
    assert other.status_code == 401                                         # another address has its own budget
    assert client.get("/v1/jobs", headers=callers.a.headers).status_code == 429   # before any key lookup


def test_redis_outage_falls_back_to_process_counters(caplog):
    limiter = RedisLimiter(f"redis://127.0.0.1:{free_port()}/0")
    decisions = [limiter.hit("submit", "k", Limit(2, 60)) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]
    assert "unreachable" in caplog.text


@pytest.mark.parametrize("raw, expected", [("30/minute", (30, 60)), ("5/second", (5, 1)), ("off", None)])
def test_rate_setting_format(raw, expected):
    from face3d.shared.config import load_settings

    assert load_settings(env={"RATE_LIMIT_SUBMIT": raw}).rate_limit_submit == expected


@pytest.mark.parametrize("raw", ["30", "x/minute", "30/fortnight", "-1/minute"])
def test_bad_rate_settings_are_config_errors(raw):
    from face3d.shared.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="RATE_LIMIT_READ"):
        load_settings(env={"RATE_LIMIT_READ": raw})


@pytest.mark.parametrize("trusted, separate", [(1, True), (0, False)])
def test_behind_a_trusted_proxy_the_failed_auth_limit_keys_on_the_forwarded_address(make_app, trusted, separate):
    """Behind compose's nginx every request comes from the proxy: with TRUSTED_PROXIES=1 the client address is the
    X-Forwarded-For one, so one client's failures don't lock out the others; untrusted, the header is ignored."""
    client = make_app(RATE_LIMIT_AUTH_FAILURES="2/minute", RATE_LIMIT_READ="off",
                      TRUSTED_PROXIES=str(trusted)).test_client()
    bad = {"Authorization": "Bearer f3d_not-a-key"}

    def from_client(address: str) -> int:
        return client.get("/v1/jobs", headers={**bad, "X-Forwarded-For": address}).status_code

    assert [from_client("127.0.0.2") for _ in range(3)] == [401, 401, 429]
    assert from_client("127.0.0.3") == (401 if separate else 429)
