"""What a request handler needs, built once per app by create_app and injectable for tests."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from face3d.shared.config import Settings
    from face3d.shared.db import SessionFactory
    from face3d.shared.queue import JobQueue
    from face3d.shared.storage import Storage


@dataclass
class Services:
    settings: "Settings"
    session_factory: "SessionFactory"
    storage: "Storage"
    queue: "JobQueue"           # or any object with its methods (tests: tests/stubs.py RecordingQueue)
    waits: threading.Semaphore = field(init=False)     # `Prefer: wait` requests waiting now (MAX_CONCURRENT_WAITS)

    def __post_init__(self) -> None:
        self.waits = threading.BoundedSemaphore(self.settings.max_concurrent_waits or 1)


def services() -> Services:
    return current_app.extensions["face3d"]
