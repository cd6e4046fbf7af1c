"""A big batch must not starve interactive jobs: the worker takes from `cpu` before `batch` (priority queue order)."""
from __future__ import annotations

import io
import time

import sqlalchemy as sa
from PIL import Image

from face3d.client.http import Face3dClient
from face3d.shared.models import Job
from face3d.shared.jobs import get_job
from face3d.shared.states import JobState
from tests.batches.conftest import SOURCE_BUCKET
from tests.batches.stack import wait_until

BATCH_ITEMS = 500
START_BOUND_S = 10.0        # generous for CI; bench/bench_batch.py measures the real figure


def tiny_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 48), (90, 140, 60)).save(buffer, format="PNG")
    return buffer.getvalue()


def batch_counts(sf, batch_id: str) -> dict[str, int]:
    query = sa.select(Job.state, sa.func.count()).where(Job.batch_id == batch_id).group_by(Job.state)
    with sf() as session:
        return {JobState(state).value: count for state, count in session.execute(query)}


def test_interactive_job_starts_within_seconds_during_a_500_item_batch(api_url, source_s3, sf, faces_dir, worker):
    source_s3.put_object(Bucket=SOURCE_BUCKET, Key="tiny/green.png", Body=tiny_png())
    client = Face3dClient(api_url)
    items = [{"url": f"s3://{SOURCE_BUCKET}/tiny/green.png", "name": f"tiny-{i:03d}.png"} for i in range(BATCH_ITEMS)]
    batch = client.create_batch({"video": False}, items=items, name="priority")
    assert batch["state"] == "expanding"                       # a worker inserts them, 3 pages (BATCH_CHUNK_SIZE=200)
    wait_until(lambda: client.get_batch(batch["id"])["total"] == BATCH_ITEMS, 60, "the batch expanded",
               worker.log_path)
    wait_until(lambda: batch_counts(sf, batch["id"]).get("failed", 0) >= 10, 60, "batch items running",
               worker.log_path)

    job = client.submit(faces_dir / "a_frontal_darkskin_woman.jpg", {"video": False, "texture_size": 256})
    started = wait_until(lambda: get_job(sf, job.id).started_at, 30, "the interactive job start", worker.log_path)
    waited_s = (started - get_job(sf, job.id).created_at).total_seconds()
    left = batch_counts(sf, batch["id"]).get("queued", 0)
    print(f"interactive job waited {waited_s:.2f} s; {left} batch items still queued")
    canceled = client.cancel_batch(batch["id"])

    assert waited_s < START_BOUND_S, f"interactive job waited {waited_s:.1f} s behind the batch"
    assert left > 100, "the batch was nearly finished: the test did not show the interactive job jumping the queue"
    assert canceled["state"] == "canceled" and canceled["counts"]["canceled"] >= 100
    finished = client.wait(job.id, timeout=60)
    assert finished.state.value == "succeeded" and len(finished.faces) == 1
    time.sleep(0.5)
    assert batch_counts(sf, batch["id"]).get("queued", 0) == 0
