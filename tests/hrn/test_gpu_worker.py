"""The gpu worker's hooks: refused options, the health check's view of HRN, and a real prefork pool (gpu_check)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from face3d.shared.engines.hrn.gpu_worker import check_gpu_worker_options, hrn_health_problem, prepare_gpu_worker
from face3d.shared.engines.hrn.process import HrnProcess, read_status

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("pool, concurrency, message", [("threads", 1, "--pool prefork"),
                                                        ("prefork", 2, "--concurrency 1"),
                                                        ("solo", 4, "--concurrency 1")])
def test_the_gpu_queue_refuses_threads_and_more_than_one_process(pool, concurrency, message):
    with pytest.raises(ValueError, match=message):
        check_gpu_worker_options(pool, concurrency, ["gpu"])
    check_gpu_worker_options(pool, concurrency, ["cpu", "webhooks"])        # not HRN's business
    check_gpu_worker_options("prefork", 1, ["gpu"])
    check_gpu_worker_options("solo", 1, ["gpu", "cpu"])


def test_face3d_worker_refuses_threads_on_the_gpu_queue_where_hrn_is_installed(monkeypatch):
    from face3d.worker.cli import worker

    monkeypatch.setattr("face3d.shared.engines.hrn.runner.missing_modules", lambda: [])
    result = CliRunner().invoke(worker, ["--queues", "gpu", "--pool", "threads"])
    assert result.exit_code == 2 and "HRN keeps per-call state" in result.output
    result = CliRunner().invoke(worker, ["--queues", "cpu,gpu", "--concurrency", "3"])
    assert result.exit_code == 2 and "--concurrency 1 (got 3)" in result.output


def test_without_hrns_packages_the_gpu_queue_only_fails_fast_and_nothing_is_installed():
    """`face3d serve` consumes cpu,gpu with any concurrency: where HRN cannot load, that stays allowed."""
    assert prepare_gpu_worker("prefork", 4, ["cpu", "gpu"]) is False
    assert prepare_gpu_worker("threads", 1, ["cpu"]) is False


def test_the_status_file_follows_the_process_and_the_health_check_reads_it(tmp_path):
    process, path = HrnProcess(), tmp_path / "status.json"
    process.attach_status_file(path)
    assert read_status(path)["state"] == "starting"
    assert "not loaded yet (starting" in hrn_health_problem(read_status(path))
    process.load(lambda: "pipeline")
    assert read_status(path)["pid"] == os.getpid() and hrn_health_problem(read_status(path)) is None
    process.face_done()
    process.engine_failed("RuntimeError: CUDA error: an illegal memory access was encountered")
    assert hrn_health_problem(read_status(path)) == (
        "HRN poisoned: RuntimeError: CUDA error: an illegal memory access was encountered")


def test_health_problems_for_a_failed_load_and_a_vanished_child():
    assert hrn_health_problem({}) is None                                    # no gpu worker on this host
    failed = {"state": "failed", "reason": "HRN weights incomplete in /models/x: missing pytorch_model.pt",
              "pid": os.getpid()}
    assert hrn_health_problem(failed) == f"HRN failed: {failed['reason']}"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert "is gone" in hrn_health_problem({"state": "ready", "pid": int(gone.stdout)})


def test_the_worker_healthcheck_fails_while_hrn_is_not_loaded(tmp_path, monkeypatch, capsys):
    from face3d.worker import healthcheck as module

    class Control:
        def ping(self, timeout):
            return [{"face3d-gpu-1@gpu-box": {"ok": "pong"}}]

    monkeypatch.setattr("face3d.shared.queue.make_celery", lambda settings: type("App", (), {"control": Control()}))
    monkeypatch.setattr("socket.gethostname", lambda: "gpu-box")
    monkeypatch.setenv("HRN_STATUS_FILE", str(tmp_path / "status.json"))
    assert module.main() == 0                                        # no status file: not a gpu worker
    (tmp_path / "status.json").write_text(json.dumps({"state": "failed", "reason": "no CUDA", "pid": 1}))
    assert module.main() == 1 and "HRN failed: no CUDA" in capsys.readouterr().out
    (tmp_path / "status.json").write_text(json.dumps({"state": "ready", "pid": os.getpid()}))
    assert module.main() == 0


def test_a_real_prefork_pool_warms_up_in_the_child_reuses_its_model_and_replaces_a_poisoned_child(redis_url):
    """bench/gpu_check.py's prefork check without CUDA (a numpy model): the hooks under a real Celery worker."""
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "prefork", "--model", "fake",
                             "--broker", redis_url], capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert result.stdout.count("\nok ") >= 5 and "gpu_check: OK" in result.stdout
    assert "replaced by" in result.stdout


def test_gpu_check_says_which_checks_need_cuda(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "render", "timing"],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    if "skipped" not in result.stdout:
        pytest.skip("this machine has CUDA: gpu_check ran for real")
    assert result.returncode == 1 and result.stdout.count("skipped, no CUDA") == 2


def test_gpu_checks_labelled_face_comes_from_our_conversion():
    from bench.gpu_render_check import labelled_face

    face = labelled_face()
    forehead, right = face.vertices[:, 1].argmax(), face.vertices[:, 0].argmax()
    size = face.texture.shape[0]
    row = lambda v: int(round((1 - v) * (size - 1)))          # noqa: E731  our rule: v = 0 is the bottom row
    assert tuple(face.texture[row(face.uvs[forehead, 1]), int(face.uvs[forehead, 0] * (size - 1))]) [0] == 255
    assert face.uvs[right, 0] > 0.99 and face.texture[size // 2, -1, 1] == 255
