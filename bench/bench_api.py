"""API benchmark: submit and status-poll throughput (req/s, latency p50/p95) against the API under gunicorn.

Run: ``.venv/bin/python bench/bench_api.py [--database-url URL] [--redis-url redis://127.0.0.1:6379/14]``
(``make bench-api``). Starts gunicorn (gthread) on a free port with a temporary SQLite database (or --database-url)
and local storage; submitted jobs go to the given Redis db, which no worker consumes and which is flushed at the
end. The load generator runs on the same machine as the server, so both share the cores. Prints tables; asserts
nothing.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import redis
import requests

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
FACES = ROOT / ".." / "shared" / "faces"
SMALL_PHOTO = FACES / "g_grayscale_hopper.jpg"       # 5 KB
LARGE_PHOTO = FACES / "a_frontal_obama.jpg"          # 280 KB


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(env: dict[str, str], port: int, workers: int, threads: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
               "--worker-class", "gthread", "--threads", str(threads), "--log-level", "warning",
               "face3d.api.app:create_app()"]
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok:
                return process
        except requests.RequestException:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("gunicorn did not start")


def run_load(request: Callable[[requests.Session], None], concurrency: int, total: int) -> tuple[float, list[float]]:
    """``total`` requests spread over ``concurrency`` threads; returns (req/s, latencies in ms)."""
    latencies: list[float] = []
    lock = threading.Lock()
    per_thread = total // concurrency

    def worker() -> None:
        session = requests.Session()
        mine = []
        for _ in range(per_thread):
            start = time.perf_counter()
            request(session)
            mine.append((time.perf_counter() - start) * 1000)
        with lock:
            latencies.extend(mine)

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    return len(latencies) / (time.perf_counter() - start), latencies


def submitter(url: str, photo: Path) -> Callable[[requests.Session], None]:
    data = photo.read_bytes()

    def submit(session: requests.Session) -> None:
        response = session.post(f"{url}/v1/jobs", files={"image": (photo.name, data)},
                                data={"video": "false"}, timeout=30)
        response.raise_for_status()
        job_ids.append(response.json()["id"])

    job_ids: list[str] = []
    submit.job_ids = job_ids  # type: ignore[attr-defined]
    return submit


def poller(url: str, job_ids: list[str]) -> Callable[[requests.Session], None]:
    counter = iter(range(10**9))

    def poll(session: requests.Session) -> None:
        job_id = job_ids[next(counter) % len(job_ids)]
        session.get(f"{url}/v1/jobs/{job_id}", timeout=30).raise_for_status()

    return poll


def row(label: str, concurrency: int, rate: float, latencies: list[float]) -> str:
    q = statistics.quantiles(latencies, n=20)
    return f"{label:<28} {concurrency:>4} {len(latencies):>6} {rate:>9.1f} {statistics.median(latencies):>9.1f} {q[18]:>9.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--requests", type=int, default=400, help="requests per measurement")
    parser.add_argument("--gunicorn-workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--concurrency", default="1,4,8")
    args = parser.parse_args()

    broker = redis.Redis.from_url(args.redis_url)
    broker.flushdb()
    with tempfile.TemporaryDirectory(prefix="face3d-bench-api-") as folder:
        env = {**os.environ, "FACE3D_DATA_DIR": folder, "BROKER_URL": args.redis_url, "STORAGE_BACKEND": "local",
               "DATABASE_URL": args.database_url or f"sqlite:///{folder}/face3d.db"}
        from face3d.shared.migrations import upgrade

        upgrade(env["DATABASE_URL"])
        port = free_port()
        server = start_gunicorn(env, port, args.gunicorn_workers, args.threads)
        url = f"http://127.0.0.1:{port}"
        try:
            print(f"gunicorn gthread {args.gunicorn_workers} workers x {args.threads} threads, "
                  f"db {env['DATABASE_URL'].split(':')[0]}, broker {args.redis_url}, {os.cpu_count()} cores")
            print(f"{'measurement':<28} {'conc':>4} {'n':>6} {'req/s':>9} {'p50 ms':>9} {'p95 ms':>9}")
            job_ids: list[str] = []
            for concurrency in [int(c) for c in args.concurrency.split(",")]:
                for photo in (SMALL_PHOTO, LARGE_PHOTO):
                    submit = submitter(url, photo)
                    rate, latencies = run_load(submit, concurrency, args.requests)
                    job_ids += submit.job_ids
                    size = photo.stat().st_size // 1024
                    print(row(f"submit {size} KB photo", concurrency, rate, latencies))
                rate, latencies = run_load(poller(url, job_ids), concurrency, args.requests)
                print(row("status poll GET /v1/jobs/id", concurrency, rate, latencies))
        finally:
            server.terminate()
            server.wait(timeout=30)
            broker.flushdb()


if __name__ == "__main__":
    main()
