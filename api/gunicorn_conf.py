"""The shipped gunicorn settings, from the API_* settings of shared/config.py (declared once there):

    gunicorn -c python:face3d.api.gunicorn_conf 'face3d.api.app:create_app()'

gthread workers (API_WORKERS processes x API_THREADS threads) rather than sync ones: a slow client or a
`Prefer: wait` request holds one thread, not a whole process, and `Prefer: wait` is bounded per process
(MAX_CONCURRENT_WAITS) so waits never take every thread. Headers and bodies have their own timeouts
(face3d.api.gunicorn_worker). Options given on the command line (`--bind fd://3 --workers 1`) win over these.
"""
from __future__ import annotations

from face3d.shared.config import load_settings

_settings = load_settings()

bind = [_settings.api_bind]
workers = _settings.api_workers
worker_class = "face3d.api.gunicorn_worker.GuardedThreadWorker"
threads = _settings.api_threads
worker_connections = max(1000, 8 * _settings.api_threads)
timeout = 120                   # a worker process whose main loop is silent this long is restarted
graceful_timeout = 30
keepalive = 5
accesslog = "-"
