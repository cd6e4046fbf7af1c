"""What a request handler needs, built once per app and injectable for tests."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from flask import current_app

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from shared.config import Settings
    from shared.storage import Storage

Dispatcher = Callable[[str, str], None]      # (job_id, engine) -> None; raises Face3dError(BROKER_UNAVAILABLE)
BrokerCheck = Callable[[], None]             # raises when the broker cannot be reached


@dataclass
class Services:
    settings: "Settings"
    session_factory: "sessionmaker[Session]"
    storage: "Storage"
    dispatch: Dispatcher
    check_broker: BrokerCheck
    celery_app: Any = None


def services() -> Services:
    return current_app.extensions["face3d"]
