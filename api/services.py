"""What a request handler needs, built once per app by create_app and injectable for tests."""
from __future__ import annotations

from dataclasses import dataclass
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


def services() -> Services:
    return current_app.extensions["face3d"]
