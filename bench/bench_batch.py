"""Batch benchmark: N photos through the whole service (`face3d ingest` -> API -> Celery `batch` queue -> worker ->
storage -> results file) next to the engine alone on the same photos, in the same run, plus the worker's memory.

Run: ``.venv/bin/python bench/bench_batch.py [--count 1000] [--workers 2] [--redis-url redis://127.0.0.1:6379/14]``
Photos cycle through ../shared/faces; each copy gets a few unique trailing bytes (decoders ignore them) so dedup
does not skip the repeats. Video is off. The service uses a temporary SQLite database and local storage (the
embedded setup) unless --database-url is given. Prints a table; asserts nothing.
"""
from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing import Pool
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
FACES = ROOT / ".." / "shared" / "faces"
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png"}


def make_photos(folder: Path, count: int, tag: str) -> list[Path]:
    sources = sorted(p for p in FACES.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        source = sources[index % len(sources)]
        path = folder / f"{index:05d}_{source.name}"
        path.write_bytes(source.read_bytes() + f"face3d-bench-{tag}-{index}".encode())
        paths.append(path)
    return paths


# ---------------------------------------------------------------- engine alone


_engine = None


def _load_engine() -> None:
    global _engine
    from face3d.shared.engines import get_engine

    _engine = get_engine("cpu")
    _engine.load()


def _run_engine(args: tuple[str, int]) -> int:
    from face3d.shared.engines import Options
    from face3d.shared.errors import Face3dError
    from face3d.shared.pipeline import process_photo

    path, texture_size = args
    with tempfile.TemporaryDirectory() as folder:
        try:
            result = process_photo(Path(path).read_bytes(), Path(path).name, _engine,
                                   Options(video=False, texture_size=texture_size), Path(folder))
        except Face3dError:
            return 0
    return len(result.reconstruction.faces)


def engine_alone(paths: list[Path], processes: int, texture_size: int) -> float:
    with Pool(processes, initializer=_load_engine) as pool:
        pool.map(_run_engine, [(str(paths[0]), texture_size)] * processes)      # warm every process
        start = time.perf_counter()
        pool.map(_run_engine, [(str(p), texture_size) for p in paths], chunksize=1)
        return time.perf_counter() - start


# ---------------------------------------------------------------- the service


class RssSampler(threading.Thread):
    """Resident memory of a process and all its children (the Celery pool), sampled every 0.5 s."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.samples, self.stop = pid, [], threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            self.samples.append(tree_rss_mib(self.pid))


def tree_rss_mib(pid: int) -> float:
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
            todo += [int(c) for c in Path(f"/proc/{current}/task/{current}/children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue
    return total / 1024


class InteractiveProbe(threading.Thread):
    """One interactive job (POST /v1/jobs, the `cpu` queue) submitted while the batch runs: how long until it
    started (started_at - created_at)."""

    def __init__(self, client, photo: Path, delay_s: float) -> None:
        super().__init__(daemon=True)
        self.client, self.photo, self.delay_s, self.waited_s = client, photo, delay_s, None

    def run(self) -> None:
        time.sleep(self.delay_s)
        job = self.client.wait(self.client.submit(self.photo, {"video": False}).id, timeout=600)
        if job.started_at:
            self.waited_s = (job.started_at - job.created_at).total_seconds()


def service_env(work: Path, args: argparse.Namespace) -> dict[str, str]:
    return {**os.environ, "FACE3D_DATA_DIR": str(work / "data"), "BROKER_URL": args.redis_url,
            "DATABASE_URL": args.database_url or f"sqlite:///{work / 'data' / 'face3d.db'}",
            "STORAGE_BACKEND": "local", "STORAGE_DIR": str(work / "data" / "storage"), "PYTHONPATH": str(ROOT)}


def through_service(paths: list[Path], warmup: list[Path], work: Path, args: argparse.Namespace) -> dict:
    import redis

    from face3d.api.app import create_app
    from face3d.client.http import Face3dClient
    from face3d.shared.config import load_settings
    from face3d.shared.migrations import upgrade
    from face3d.client.ingest import Ingest
    from tests.api.fakes import LiveServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    env = service_env(work, args)
    upgrade(env["DATABASE_URL"])
    redis.Redis.from_url(args.redis_url).flushdb()
    command = [sys.executable, "-c", "import sys; from face3d.shared.cli import main; sys.exit(main())", "worker",
               "--queues", "cpu,batch", "--concurrency", str(args.workers), "--loglevel", "warning"]
    log = (work / "worker.log").open("wb")
    worker = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    options = {"video": False, "texture_size": args.texture_size}
    try:
        with LiveServer(create_app(load_settings(env=env))) as url:
            def run(folder: Path, output: Path) -> float:
                start = time.perf_counter()
                Ingest(str(folder), output, lambda: Face3dClient(url), options, concurrency=4,
                       progress=False, poll_s=0.5).run(timeout_s=3600)
                return time.perf_counter() - start

            run(warmup[0].parent, work / "warmup.jsonl")         # loads the engine in every pool process
            rss_warm = tree_rss_mib(worker.pid)
            sampler = RssSampler(worker.pid)
            sampler.start()
            probe = InteractiveProbe(Face3dClient(url), warmup[0], delay_s=args.probe_after_s)
            probe.start()
            elapsed = run(paths[0].parent, work / "results.jsonl")
            sampler.stop.set()
            probe.join(timeout=120)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()
        redis.Redis.from_url(args.redis_url).flushdb()
    lines = (work / "results.jsonl").read_text().splitlines()
    return {"elapsed": elapsed, "lines": len(lines), "rss_warm": rss_warm, "probe_wait_s": probe.waited_s,
            "rss_max": max(sampler.samples or [rss_warm]), "rss_end": (sampler.samples or [rss_warm])[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2, help="Worker processes, and engine processes alone.")
    parser.add_argument("--texture-size", type=int, default=1024)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--probe-after-s", type=float, default=10.0,
                        help="Submit one interactive job this long after the batch starts.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="face3d-bench-batch-") as tmp:
        work = Path(tmp)
        paths = make_photos(work / "photos", args.count, "main")
        warmup = make_photos(work / "warmup", 2 * args.workers, "warmup")
        # Engine before and after the service run: on a shared machine the load moves; compare with the mean.
        engine_runs = [engine_alone(paths, args.workers, args.texture_size)]
        service = through_service(paths, warmup, work, args)
        engine_runs.append(engine_alone(paths, args.workers, args.texture_size))
    engine_s = sum(engine_runs) / len(engine_runs)
    engine_rate, service_rate = args.count / engine_s, args.count / service["elapsed"]
    print(f"\nbatch benchmark: {args.count} photos, {args.workers} processes, video off, "
          f"texture {args.texture_size}, {os.cpu_count()} CPUs")
    print(f"{'':34s}{'seconds':>10s}{'photos/s':>10s}")
    for label, seconds in zip(("engine alone, before", "engine alone, after"), engine_runs):
        print(f"{label:34s}{seconds:10.1f}{args.count / seconds:10.2f}")
    print(f"{'engine alone, mean':34s}{engine_s:10.1f}{engine_rate:10.2f}")
    print(f"{'service end to end (face3d ingest)':34s}{service['elapsed']:10.1f}{service_rate:10.2f}")
    print(f"service cost vs the engine mean: {100 * (service['elapsed'] / engine_s - 1):+.1f} % time "
          f"({service['lines']} result lines)")
    probe = service["probe_wait_s"]
    print(f"interactive job submitted during the batch started after "
          f"{'(did not run)' if probe is None else f'{probe:.2f} s'}")
    print(f"worker RSS (all processes): {service['rss_warm']:.0f} MiB after warm-up, "
          f"max {service['rss_max']:.0f} MiB, {service['rss_end']:.0f} MiB at the end")


if __name__ == "__main__":
    main()
