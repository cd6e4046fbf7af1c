"""make bench-threads: one worker process with N threads against N processes of one thread each, and N processes of N
threads (oversubscribed), on the same jobs: the batch's wall time and the per-job p50.

    python bench/bench_threads.py [--jobs 12] [--cpus N] [--faces-dir DIR]

Each process loads the engine and the renderer first; the clock starts when every process is ready. Jobs are the
default options (mesh files, vis.png, the turntable) on a mix of one-face and group photos. Prints a table; asserts
nothing. RENDER_THREADS=0 (the default) gives each worker process CPUs / processes threads: the 1 x N and N x 1 rows.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PHOTOS = ("a_frontal_obama.jpg", "c_group_t1_six.jpg", "b_yaw_left_face.jpg", "a_frontal_darkskin_woman.jpg",
          "c_group_selfie.jpg", "e_mask_selfie.jpg")


def _worker(threads: int, jobs: list[Path], ready, results) -> None:
    from face3d.shared.artifacts import render
    from face3d.shared.engines import get_engine
    from face3d.shared.engines.base import Options
    from face3d.shared.pipeline import process_photo
    from face3d.shared.threads import configure_threads

    configure_threads(threads)
    engine = get_engine("cpu")
    engine.load()
    render.warm_up()
    ready.wait()
    times = []
    with tempfile.TemporaryDirectory(prefix="face3d-bench-threads-") as tmp:
        for n, path in enumerate(jobs):
            start = time.perf_counter()
            process_photo(path.read_bytes(), path.name, engine, Options(), Path(tmp) / str(n))
            times.append((time.perf_counter() - start) * 1000)
    results.put(times)


def run(processes: int, threads: int, jobs: list[Path]) -> tuple[float, list[float]]:
    context = mp.get_context("spawn")          # a clean interpreter per process, as a worker pool child gets
    ready, results = context.Barrier(processes + 1), context.Queue()
    children = [context.Process(target=_worker, args=(threads, jobs[i::processes], ready, results))
                for i in range(processes)]
    for child in children:
        child.start()
    ready.wait()
    start = time.perf_counter()
    times = [ms for _ in children for ms in results.get()]
    wall = (time.perf_counter() - start) * 1000
    for child in children:
        child.join()
    return wall, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--cpus", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--faces-dir", type=Path, default=ROOT / ".." / "shared" / "faces")
    args = parser.parse_args()
    photos = [args.faces_dir / name for name in PHOTOS if (args.faces_dir / name).is_file()]
    jobs = [photos[i % len(photos)] for i in range(args.jobs)]
    n = args.cpus
    print(f"{args.jobs} jobs ({len(photos)} photos, default options), {n} CPUs\n")
    print(f"{'processes x threads':<22} {'batch s':>8} {'jobs/s':>7} {'job p50 ms':>11} {'job p95 ms':>11}")
    for processes, threads in ((1, 1), (1, n), (n, 1), (n, n)):
        wall, times = run(processes, threads, jobs)
        p95 = statistics.quantiles(times, n=20)[-1] if len(times) > 1 else times[0]
        print(f"{f'{processes} x {threads}':<22} {wall / 1000:>8.2f} {len(times) / wall * 1000:>7.2f} "
              f"{statistics.median(times):>11.0f} {p95:>11.0f}")


if __name__ == "__main__":
    main()
