"""The start of every child of `face3d serve`: ``python -m face3d.api.supervised MODULE ARGS...`` runs MODULE as
``python -m MODULE ARGS...`` would, in a process that never outlives its supervisor.

The kernel's parent-death signal (Linux) sends SIGTERM the moment the supervisor dies, even by kill -9; a watch
thread does the same where there is none and covers a supervisor that died before the signal was armed. Either
way the child first stops cleanly (gunicorn finishes its requests, the Celery worker its task), and is killed
CHILD_GRACE_S later if it has not. Celery's pool processes and gunicorn's workers already follow their own parent.
"""
from __future__ import annotations

import os
import runpy
import sys

from face3d.shared.processes import watch_parent

SUPERVISOR_PID_ENV = "FACE3D_SUPERVISOR_PID"
CHILD_GRACE_S = 20.0


def command(module: str, *args: str) -> list[str]:
    """The command line that runs ``python -m module args...`` as a supervised child."""
    return [sys.executable, "-m", __name__, module, *args]


def main() -> None:
    module, *args = sys.argv[1:]
    supervisor = os.environ.get(SUPERVISOR_PID_ENV)
    if supervisor:
        watch_parent(int(supervisor), CHILD_GRACE_S)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
