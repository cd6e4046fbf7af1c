"""The job's thread pool (shared/threads.py): sized once per process, order kept, safe across fork, and detection
finds the same faces however many lanes it runs."""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from face3d.shared import threads
from tests.engine.conftest import photo_path


@pytest.fixture
def two_threads():
    before = threads.job_threads()
    threads.configure_threads(2)
    yield
    threads.configure_threads(before)


def test_threads_default_to_the_cpus_shared_among_the_worker_processes():
    before = threads.job_threads()
    try:
        cpus = len(os.sched_getaffinity(0))
        assert threads.configure_threads(0, processes=1) == cpus
        assert threads.configure_threads(0, processes=cpus) == 1
        assert threads.configure_threads(0, processes=4 * cpus) == 1          # never none
        assert threads.configure_threads(3, processes=8) == 3                 # an explicit count is kept
    finally:
        threads.configure_threads(before)


def test_parallel_imap_keeps_order_and_runs_on_the_pool(two_threads):
    names = list(threads.parallel_imap(lambda i: (i, threading.current_thread().name), range(12)))
    assert [i for i, _ in names] == list(range(12))
    assert all(name.startswith("face3d-job") for _, name in names)


def test_in_background_gives_the_result_or_raises_its_error(two_threads):
    assert threads.in_background(lambda: 6 * 7)() == 42

    def broken():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        threads.in_background(broken)()


def test_a_forked_child_gets_a_pool_of_its_own(two_threads):
    """A Celery pool child is forked from a parent that may have used the pool: the inherited pool has no threads."""
    assert list(threads.parallel_imap(lambda i: i * i, range(4))) == [0, 1, 4, 9]      # the parent's pool exists
    read, write = os.pipe()
    child = os.fork()
    if child == 0:                                                  # pragma: no cover - runs in the child
        os.close(read)
        timer = threading.Timer(20.0, lambda: os._exit(3))          # a hang fails the test instead of the suite
        timer.daemon = True
        timer.start()
        ok = list(threads.parallel_imap(lambda i: i + 1, range(6))) == [1, 2, 3, 4, 5, 6]
        os.write(write, b"ok" if ok else b"no")
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(child, 0)
    answer = os.read(read, 2)
    os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0 and answer == b"ok"


@pytest.mark.parametrize("photo", ["c_group_t1_six.jpg", "g_tiny_faces_4faces.png"])
def test_detection_finds_the_same_faces_with_one_lane_or_two(cpu_engine, photo):
    from face3d.shared.imaging import load_image

    image = load_image(photo_path(photo))
    found = {}
    before = threads.job_threads()
    try:
        for count in (1, 2):
            threads.configure_threads(count)
            found[count] = np.array([face.bbox for face in cpu_engine.detect_faces(image)])
    finally:
        threads.configure_threads(before)
    assert found[1].shape == found[2].shape and len(found[1]) >= 4
    assert np.allclose(found[1], found[2], atol=0.5)


def test_jobs_sharing_one_engine_find_the_same_faces_as_one_alone(cpu_engine, two_threads):
    """A threads pool runs several jobs on one engine: MediaPipe's graphs must still serve one caller at a time."""
    from concurrent.futures import ThreadPoolExecutor

    from face3d.shared.imaging import load_image

    images = [load_image(photo_path(name)) for name in ("c_group_t1_six.jpg", "a_frontal_obama.jpg",
                                                         "b_yaw_left_face.jpg", "g_tiny_faces_4faces.png")]
    alone = [np.array([face.bbox for face in cpu_engine.detect_faces(image)]) for image in images]
    with ThreadPoolExecutor(max_workers=4) as callers:
        together = list(callers.map(lambda image: np.array([f.bbox for f in cpu_engine.detect_faces(image)]),
                                    images * 3))
    for expected, got in zip(alone * 3, together):
        assert expected.shape == got.shape and np.allclose(expected, got, atol=0.5)
