"""Latency seen by a client: submit -> "mesh ready" -> succeeded, p50/p95 over N jobs through the embedded
`face3d serve` (SQLite, local files, embedded broker, one worker process) on a free port.

Run: ``.venv/bin/python bench/bench_latency.py [--jobs 50] [--photo PATH] [--poll-ms 20] [--prefer-wait]``
(``make bench-latency`` runs both clients). One job at a time (latency, not throughput); the client polls
GET /v1/jobs/{id} every ``--poll-ms``, or with ``--prefer-wait`` holds one `Prefer: wait` request for the mesh
(``wait_for=mesh``) and then one for the end: the server checks every WAIT_POLL_S (50 ms), so that client sees each
milestone up to 50 ms late, but its polling does not take CPU from the worker. "Mesh ready"
is the first poll whose job shows every mesh artifact (face_<i>.obj/.mtl/_texture.png/.glb, result.json) with
ready = true (or the job succeeded, on a server without per-artifact readiness). The worker's own numbers
(timings_ms.mesh_ready, from the job's start, and each stage's p50) are printed too. Prints tables; asserts nothing.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / ".." / "shared" / "faces" / "a_frontal_obama.jpg"
MESH_SUFFIXES = (".obj", ".mtl", "_texture.png", ".glb")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_serve(port: int, data_dir: Path, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL", "STORAGE_BACKEND")}
    command = [sys.executable, "-c", "import sys; from face3d.shared.cli import main; sys.exit(main())", "serve",
               "--port", str(port), "--data-dir", str(data_dir)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"face3d serve exited:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).ok:
                return process
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"face3d serve did not answer:\n{log.read_text()[-3000:]}")


def mesh_ready(job: dict) -> bool:
    if job["state"] == "succeeded":
        return True
    ready = {a["name"] for a in job.get("artifacts", []) if a.get("ready", True)}
    return "result.json" in ready and any(name.endswith(MESH_SUFFIXES) for name in ready) and all(
        a.get("ready", True) for a in job["artifacts"] if a["name"].endswith(MESH_SUFFIXES))


def one_job(session: requests.Session, url: str, photo: bytes, poll_s: float) -> tuple[float, float, dict]:
    start = time.perf_counter()
    response = session.post(f"{url}/v1/jobs", files={"image": ("photo.jpg", photo)}, timeout=30)
    response.raise_for_status()
    job, mesh_at = response.json(), None
    while job["state"] not in ("succeeded", "failed", "canceled"):
        if mesh_at is None and mesh_ready(job):
            mesh_at = time.perf_counter()
        time.sleep(poll_s)
        job = session.get(f"{url}/v1/jobs/{job['id']}", timeout=30).json()
    end = time.perf_counter()
    if job["state"] != "succeeded":
        raise SystemExit(f"job {job['id']} {job['state']}: {job.get('error')}")
    return ((mesh_at or end) - start) * 1000, (end - start) * 1000, job


def one_waiting_job(session: requests.Session, url: str, photo: bytes) -> tuple[float, float, dict]:
    """The client an app would write: `Prefer: wait` for the mesh (``wait_for=mesh``), then for the end."""
    start = time.perf_counter()
    response = session.post(f"{url}/v1/jobs", files={"image": ("photo.jpg", photo)}, timeout=30)
    response.raise_for_status()
    job_id, wait = response.json()["id"], {"Prefer": "wait=30"}
    job = session.get(f"{url}/v1/jobs/{job_id}", params={"wait_for": "mesh"}, headers=wait, timeout=60).json()
    mesh_at = time.perf_counter()
    while job["state"] not in ("succeeded", "failed", "canceled"):
        job = session.get(f"{url}/v1/jobs/{job_id}", headers=wait, timeout=60).json()
    end = time.perf_counter()
    if job["state"] != "succeeded" or not mesh_ready(job):
        raise SystemExit(f"job {job_id} {job['state']}: {job.get('error')}")
    return (mesh_at - start) * 1000, (end - start) * 1000, job


def row(name: str, values: list[float]) -> str:
    return f"{name:<28} {statistics.median(values):>9.0f} {np.percentile(values, 95):>9.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--photo", type=Path, default=PHOTO)
    parser.add_argument("--poll-ms", type=float, default=20.0)
    parser.add_argument("--prefer-wait", action="store_true",
                        help="the client waits with `Prefer: wait` (wait_for=mesh, then the end) instead of polling")
    parser.add_argument("--warm-up", type=int, default=2, help="jobs run first and not counted (engine load)")
    args = parser.parse_args()
    photo = args.photo.read_bytes()
    with tempfile.TemporaryDirectory(prefix="face3d-latency-") as tmp:
        port = free_port()
        serve = start_serve(port, Path(tmp) / "data", Path(tmp) / "serve.log")
        url = f"http://127.0.0.1:{port}"
        try:
            session = requests.Session()
            for _ in range(args.warm_up):
                one_job(session, url, photo, args.poll_ms / 1000)
            run = (lambda: one_waiting_job(session, url, photo)) if args.prefer_wait else \
                (lambda: one_job(session, url, photo, args.poll_ms / 1000))
            runs = [run() for _ in range(args.jobs)]
        finally:
            serve.send_signal(signal.SIGINT)
            serve.wait(timeout=60)
    mesh, done = [r[0] for r in runs], [r[1] for r in runs]
    worker_mesh = [r[2]["timings_ms"].get("mesh_ready", float("nan")) for r in runs]
    client = "waiting with Prefer: wait" if args.prefer_wait else f"polling every {args.poll_ms:g} ms"
    print(f"{args.jobs} jobs, {args.photo.name}, default options, {client}, one at a time")
    print(f"{'':<28} {'p50 ms':>9} {'p95 ms':>9}")
    print(row("submit -> mesh ready", mesh))
    print(row("submit -> succeeded", done))
    print(row("worker: start -> mesh stored", worker_mesh))
    stages = sorted({stage for r in runs for stage in r[2]["timings_ms"]} - {"mesh_ready"})
    print("the worker's stage timings (result.json timings_ms), p50 ms: " + ", ".join(
        f"{stage} {statistics.median(r[2]['timings_ms'].get(stage, float('nan')) for r in runs):.1f}"
        for stage in stages))


if __name__ == "__main__":
    main()
