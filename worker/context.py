"""What a task needs, built once per worker process (after the fork) from the Celery app's settings: the settings,
a session factory, the storage and the queue the worker sends webhook retries through."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from celery import Celery

from face3d.shared.config import Settings, load_settings
from face3d.shared.db import SessionFactory, session_factory_for
from face3d.shared.queue import JobQueue
from face3d.shared.storage import Storage, make_storage


@dataclass(frozen=True)
class WorkerContext:
    settings: Settings
    session_factory: SessionFactory
    storage: Storage
    queue: JobQueue


def settings_of(app: Celery) -> Settings:
    """The Settings the app was made with (shared.queue.make_celery), else the environment's."""
    settings = getattr(app.conf, "face3d_settings", None)
    return settings if isinstance(settings, Settings) else load_settings()


@lru_cache(maxsize=4)
def context_for(app: Celery) -> WorkerContext:
    """Built lazily in each worker process, once per Celery app."""
    settings = settings_of(app)
    return WorkerContext(settings, session_factory_for(settings.database_url), make_storage(settings),
                         JobQueue(app, settings))
