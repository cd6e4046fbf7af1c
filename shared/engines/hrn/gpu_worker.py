"""What a Celery worker on the gpu queue needs from the HRN engine, as functions the worker calls.

- ``check_gpu_worker_options``: one job at a time per process and one process per GPU worker. HRN keeps each
  call's inputs and results on its model object (``set_input_base``/``set_input_hrn``, ``pred_coeffs_dict``,
  models/facerecon_model.py:208-229, 400), so ``--pool threads`` would mix two jobs, and every extra process
  loads another full copy onto the GPU.
- ``prepare_gpu_worker``: called by ``face3d worker`` before Celery starts. It attaches the status file the health
  check reads, starts HRN's warm-up in the pool child after the fork, in a thread (``worker_process_init``
  handlers must return within Celery's 4 s ``worker_proc_alive_timeout``, and building the pipeline takes much
  longer), and replaces a pool child whose CUDA context is poisoned once its job has been reported.
- ``hrn_health_problem``: what the container's health check says about HRN.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Callable, Sequence

from face3d.shared.engines.hrn.process import LOADING, PROCESS, READY, STARTING, read_status

GPU_QUEUE = "gpu"
EX_POISONED = 70                # os.EX_SOFTWARE: the pool logs it and starts a fresh child

log = logging.getLogger(__name__)
_in_pool_child = False


def check_gpu_worker_options(pool: str, concurrency: int, queues: Sequence[str]) -> None:
    """ValueError when a worker consuming the gpu queue would run HRN twice at once (see the module docstring)."""
    if GPU_QUEUE not in queues:
        return
    if pool == "threads":
        raise ValueError("the gpu queue needs --pool prefork (or solo): HRN keeps per-call state on its model, "
                         "so threads would mix two jobs")
    if concurrency != 1:
        raise ValueError(f"the gpu queue needs --concurrency 1 (got {concurrency}): HRN keeps per-call state and "
                         "each process loads its own copy onto the GPU; run one worker per GPU instead")


def warm_up_hrn() -> None:
    """Build HRN's pipeline now, so the first job does not pay for it; failures are remembered (process.py)."""
    from face3d.shared.engines.hrn.engine import HrnEngine
    from face3d.shared.errors import Face3dError

    try:
        HrnEngine().load()
        log.info("HRN warm-up done in pid %d", os.getpid())
    except Face3dError as exc:
        log.error("HRN warm-up failed in pid %d: %s", os.getpid(), exc.message)


def prepare_gpu_worker(pool: str, concurrency: int, queues: Sequence[str],
                       warm_up: Callable[[], None] | None = None) -> bool:
    """Check the options and install the gpu worker's hooks. Nothing is done (False) for a worker not consuming
    the gpu queue, or on a machine without HRN's packages, where the gpu queue only fails HRN jobs fast with
    engine_unavailable (``face3d serve`` consumes it for that reason with any concurrency)."""
    if GPU_QUEUE not in queues:
        return False
    if warm_up is None:
        from face3d.shared.engines.hrn.runner import missing_modules

        if missing_modules():
            return False
        warm_up = warm_up_hrn
    check_gpu_worker_options(pool, concurrency, queues)
    from celery.signals import task_postrun, worker_process_init, worker_ready

    PROCESS.attach_status_file()

    def start_warm_up(**_: object) -> None:
        global _in_pool_child
        _in_pool_child = pool == "prefork"
        threading.Thread(target=warm_up, name="hrn-warm-up", daemon=True).start()

    # prefork: in each pool child after the fork; solo runs jobs in the worker's own process.
    (worker_process_init if pool == "prefork" else worker_ready).connect(start_warm_up, weak=False)
    task_postrun.connect(retire_poisoned_child, weak=False)
    return True


def retire_poisoned_child(**_: object) -> None:
    """After a job, leave a pool child whose CUDA context is poisoned (process.py); the pool starts a fresh one.

    Celery's signal dispatch catches only Exception, so a SystemExit raised in ``task_postrun`` leaves the job, and
    billiard lets the child go once it has reported the job (billiard 4.3.2 pool.py:403-429). Celery still counts
    the exit as WorkerLostError: with results ignored (face3d's ``task_ignore_result``) and
    ``task_reject_on_worker_lost`` the message is requeued once, and its redelivery ignored, as the job has already
    failed (``_claim`` in worker/tasks.py; celery 5.7.0 worker/request.py:709-760). The child's replacement is what
    ``bench/gpu_check.py prefork --model fake`` shows with Celery 5.7.0.
    A solo worker is not stopped: it refuses HRN jobs (engine_unavailable) and fails its health check until it
    is restarted.
    """
    if _in_pool_child and PROCESS.poisoned:
        log.error("HRN: CUDA context unusable after %s: replacing pool child %d", PROCESS.reason, os.getpid())
        raise SystemExit(EX_POISONED)


def hrn_health_problem(status: dict | None = None) -> str | None:
    """None when this host runs no gpu worker (no status file) or its HRN is loaded; else what is wrong."""
    status = read_status() if status is None else status
    if not status:
        return None
    state, pid = status.get("state"), status.get("pid")
    if state == READY:
        return None if _alive(pid) else f"HRN was loaded by pid {pid}, which is gone (a new pool child is starting)"
    if state in (STARTING, LOADING, "not_loaded"):
        return f"HRN is not loaded yet ({state}, pid {pid})"
    return f"HRN {state}: {status.get('reason') or 'no reason recorded'}"


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:         # exists, owned by someone else
        return True
    return True
