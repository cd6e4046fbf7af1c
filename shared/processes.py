"""Processes that must not outlive the one that started them (the embedded broker, the children of
`face3d serve`): the Linux parent-death signal, and a watch for systems without it."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
WATCH_INTERVAL_S = 0.5


def set_parent_death_signal(signum: int = signal.SIGTERM) -> None:
    """Linux: the kernel sends ``signum`` to this process when its parent dies, even by SIGKILL. Elsewhere a
    no-op (see watch_parent). Survives exec, so it can be set in a preexec_fn or by the child itself."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum)


def watch_parent(parent_pid: int, grace_s: float) -> None:
    """Make this process follow ``parent_pid`` out: when it is gone (or already was, before the death signal
    was armed), SIGTERM this process so it stops cleanly, and SIGKILL it ``grace_s`` later if it has not."""
    set_parent_death_signal(signal.SIGTERM)
    thread = threading.Thread(target=_follow, args=(parent_pid, grace_s), name="watch-parent", daemon=True)
    thread.start()


def _follow(parent_pid: int, grace_s: float) -> None:
    while os.getppid() == parent_pid:
        time.sleep(WATCH_INTERVAL_S)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace_s)
    os.kill(os.getpid(), signal.SIGKILL)
