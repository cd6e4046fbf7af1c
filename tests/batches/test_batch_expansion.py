"""A 400,000-item JSON manifest on the real stack (PostgreSQL, Redis, moto S3, a worker process): the request
answers at once with the batch ``expanding``, and the worker expands it fully, page by page, counts growing.

The items name keys under uploads/ that do not exist: each fails fast (not_found) when a worker reaches it, so the
test measures expansion, not reconstruction."""
from __future__ import annotations

import json
import time

import pytest
import requests

from tests.batches.stack import batch_job_count, wait_until

ITEMS = int(__import__("os").environ.get("FACE3D_TEST_MANIFEST_ITEMS", "400000"))
ANSWER_BOUND_S = 2.0
EXPAND_TIMEOUT_S = 420


@pytest.fixture(scope="module")
def stack_env(stack_env):
    """Bigger pages than the other batch tests (one transaction each), and no in-flight cap for this key."""
    return {**stack_env, "BATCH_CHUNK_SIZE": "5000", "MAX_BATCH_ITEMS_IN_FLIGHT_PER_KEY": "0"}


@pytest.fixture(scope="module")
def worker(stack_env, tmp_path_factory):
    """One worker process: it expands; the items wait (they are not what this test measures)."""
    from tests.service.workers import worker_process

    log = tmp_path_factory.mktemp("expansion-worker") / "worker.log"
    with worker_process(stack_env, log, pool="prefork", queues="cpu,batch", concurrency=1, loglevel="info") as process:
        yield process


def test_a_400k_item_manifest_returns_at_once_and_expands_fully(api_url, sf, worker):
    # Encoded before the clock starts, and no list of 400,000 dicts kept alive: the API runs in this process, and
    # the garbage collector would walk them on every collection it makes while the request parses its own.
    body = json.dumps({"items": [{"key": f"uploads/missing/{i:06d}.jpg"} for i in range(ITEMS)],
                       "options": {"video": False}})
    print(f"manifest: {len(body) / 2 ** 20:.1f} MiB")
    warm = requests.post(f"{api_url}/v1/batches", json={"items": [{"key": "uploads/missing/warm.jpg"}]}, timeout=30)
    assert warm.status_code == 201                  # first storage and broker connections are made here, not timed
    started = time.monotonic()
    response = requests.post(f"{api_url}/v1/batches", data=body, headers={"Content-Type": "application/json"},
                             timeout=60)
    answered_s = time.monotonic() - started
    assert response.status_code == 201, response.text[:500]
    batch = response.json()
    print(f"POST /v1/batches with {ITEMS} items answered in {answered_s:.2f} s")
    assert batch["state"] == "expanding" and batch["total"] == 0
    assert answered_s < ANSWER_BOUND_S

    seen: list[int] = []

    def expanded() -> bool:
        view = requests.get(f"{api_url}/v1/batches/{batch['id']}", timeout=30).json()
        seen.append(view["total"])
        return view["state"] != "expanding"

    wait_until(expanded, EXPAND_TIMEOUT_S, "the expansion of 400,000 items", worker.log_path)
    expand_s = time.monotonic() - started
    print(f"expanded in {expand_s:.1f} s; totals seen while expanding: {sorted(set(seen))[:8]}...")
    assert batch_job_count(sf, batch["id"]) == ITEMS
    assert any(0 < total < ITEMS for total in seen), "the counts did not grow while the batch expanded"
    view = requests.get(f"{api_url}/v1/batches/{batch['id']}", timeout=30).json()
    assert view["total"] == ITEMS and view["expand_error"] is None
    canceled = requests.post(f"{api_url}/v1/batches/{batch['id']}/cancel", timeout=120)
    assert canceled.status_code == 202
