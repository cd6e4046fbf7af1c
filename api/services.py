"""What a request handler needs, built once per app by create_app and injectable for tests."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.db import SessionFactory
    from shared.queue import JobQueue
    from shared.storage import Storage


@dataclass
class Services:
    settings: "Settings"
    session_factory: "SessionFactory"
    storage: "Storage"
    queue: "JobQueue"           # or any object with its methods (tests: tests/stubs.py RecordingQueue)


def services() -> Services:
    return current_app.extensions["face3d"]
