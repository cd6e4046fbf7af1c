"""Queue benchmark: face3d job overhead (row committed -> worker starts it, p50/p95) next to raw Celery on the same
Redis in the same run (no-op task start latency and throughput).

Run: ``.venv/bin/python bench/bench_queue.py [--redis-url redis://127.0.0.1:6379/15] [--jobs 40]``
(``make bench-queue``). face3d jobs use f_noface_grass.jpg (the engine gives up in ~0.1 s, so the worker is free
again at once), a temporary SQLite database (or --database-url) and local storage. Each latency sample is taken
with an idle worker (one job at a time); the burst rows send everything at once and time until the last one ends.
Prints tables; asserts nothing.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from celery import Celery

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
NOFACE_PHOTO = ROOT / ".." / "shared" / "faces" / "f_noface_grass.jpg"
NOOP_STARTS = "bench:noop-starts"

# The raw-Celery baseline: configured like face3d's app (acks_late, prefetch 1, JSON), but its task does nothing.
noop_app = Celery("bench-noop", broker=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/15"))
noop_app.conf.update(task_acks_late=True, worker_prefetch_multiplier=1, task_ignore_result=True,
                     task_serializer="json", accept_content=["json"], task_default_queue="bench-noop",
                     worker_hijack_root_logger=False)


@noop_app.task(name="bench.noop")
def noop(sent_at: float) -> None:
    started = time.time()
    redis.Redis.from_url(noop_app.conf.broker_url).rpush(NOOP_STARTS, f"{sent_at} {started}")


def percentiles(samples_ms: list[float]) -> tuple[float, float]:
    return statistics.median(samples_ms), statistics.quantiles(samples_ms, n=20)[18]


def start_process(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def stop_process(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


# ---------------------------------------------------------------- raw Celery


def bench_noop(env: dict[str, str], broker: redis.Redis, count: int, folder: Path) -> None:
    worker = start_process([sys.executable, "-m", "celery", "-A", "bench.bench_queue:noop_app", "worker",
                            "-Q", "bench-noop", "-c", "1", "-P", "prefork", "--without-gossip",
                            "--without-mingle", "-l", "warning"], env, folder / "noop-worker.log")
    try:
        noop.delay(time.time())                          # warm-up, also waits for the worker to be up
        _wait_for_len(broker, NOOP_STARTS, 1, timeout=60)
        broker.delete(NOOP_STARTS)
        latencies = []
        for _ in range(count):
            noop.delay(time.time())
            _wait_for_len(broker, NOOP_STARTS, 1)
            sent, started = map(float, broker.lpop(NOOP_STARTS).split())
            latencies.append((started - sent) * 1000)
        start = time.perf_counter()
        for _ in range(count):
            noop.delay(time.time())
        _wait_for_len(broker, NOOP_STARTS, count)
        rate = count / (time.perf_counter() - start)
        broker.delete(NOOP_STARTS)
    finally:
        stop_process(worker)
    p50, p95 = percentiles(latencies)
    print(f"{'raw Celery no-op task':<34} {count:>5} {p50:>11.1f} {p95:>11.1f} {rate:>12.1f}")


def _wait_for_len(broker: redis.Redis, key: str, length: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while broker.llen(key) < length:
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {key}")
        time.sleep(0.001)


# ---------------------------------------------------------------- face3d jobs


def bench_face3d(env: dict[str, str], count: int, folder: Path) -> None:
    from face3d.api.app import create_app
    from face3d.api.serve import worker_command
    from face3d.shared import jobs, models
    from face3d.shared.config import load_settings
    from face3d.shared.migrations import upgrade

    settings = load_settings(env=env)
    upgrade(settings.database_url)
    app = create_app(settings)
    client = app.test_client()
    sf = app.extensions["face3d"].session_factory
    worker = start_process(worker_command(1), env, folder / "face3d-worker.log")
    photo = NOFACE_PHOTO.read_bytes()

    def submit() -> str:
        response = client.post("/v1/jobs", data={"image": (_bytes_io(photo), "grass.jpg")},
                               content_type="multipart/form-data")
        if response.status_code != 202:
            raise SystemExit(f"submit failed: {response.get_data(as_text=True)}")
        return response.get_json()["id"]

    def wait(job_id: str, timeout: float = 120) -> models.Job:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = jobs.get_job(sf, job_id)
            if job.is_terminal:
                return job
            time.sleep(0.002)
        raise SystemExit(f"job {job_id} did not finish")

    try:
        wait(submit())                                  # warm-up: worker start, engine load
        overhead, end_to_end = [], []
        for _ in range(count):
            job = wait(submit())
            overhead.append((job.started_at - job.created_at).total_seconds() * 1000)
            end_to_end.append((job.finished_at - job.created_at).total_seconds() * 1000)
        start = time.perf_counter()
        ids = [submit() for _ in range(count)]
        for job_id in ids:
            wait(job_id)
        rate = count / (time.perf_counter() - start)
    finally:
        stop_process(worker)
    p50, p95 = percentiles(overhead)
    print(f"{'face3d job: commit -> running':<34} {count:>5} {p50:>11.1f} {p95:>11.1f} {rate:>12.1f}")
    p50, p95 = percentiles(end_to_end)
    print(f"{'face3d job: commit -> failed*':<34} {count:>5} {p50:>11.1f} {p95:>11.1f} {'':>12}")
    print("* the whole no-face job: claim, download input, decode, detect (none), mark failed")


def _bytes_io(data: bytes):
    import io

    return io.BytesIO(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--jobs", type=int, default=40)
    args = parser.parse_args()

    broker = redis.Redis.from_url(args.redis_url)
    broker.flushdb()
    noop_app.conf.broker_url = args.redis_url
    with tempfile.TemporaryDirectory(prefix="face3d-bench-queue-") as folder:
        env = {**os.environ, "FACE3D_DATA_DIR": folder, "BROKER_URL": args.redis_url, "STORAGE_BACKEND": "local",
               "DATABASE_URL": args.database_url or f"sqlite:///{folder}/face3d.db",
               "BENCH_BROKER_URL": args.redis_url, "PYTHONPATH": str(ROOT)}
        print(f"broker {args.redis_url}, db {env['DATABASE_URL'].split(':')[0]}, 1 worker process, "
              f"{os.cpu_count()} cores")
        print(f"{'measurement':<34} {'n':>5} {'p50 ms':>11} {'p95 ms':>11} {'burst per s':>12}")
        try:
            bench_noop(env, broker, args.jobs, Path(folder))
            bench_face3d(env, args.jobs, Path(folder))
        finally:
            broker.flushdb()


if __name__ == "__main__":
    main()
