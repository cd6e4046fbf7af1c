"""The shipped API server: every way of running it (Dockerfile, compose, `face3d serve`) takes gunicorn's settings
from one module (api/gunicorn_conf.py, itself from shared/config.py); compose puts a buffering nginx in front and
gives webhook deliveries a worker of their own. Slow clients against the real server: tests/hostile/test_slow_clients.py."""
from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = "python:face3d.api.gunicorn_conf"


def compose_services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_dockerfile_compose_and_serve_use_the_one_gunicorn_config():
    from face3d.api.serve import api_command

    line = next(l for l in (ROOT / "infra" / "Dockerfile").read_text().splitlines() if l.startswith("CMD "))
    commands = [json.loads(line[4:]), compose_services()["api"]["command"], api_command(3)]
    for command in commands:
        assert command[command.index("--config") + 1] == CONFIG, command
        assert "--threads" not in command and "--worker-class" not in command, command


def test_the_config_module_reads_the_declared_settings(monkeypatch):
    monkeypatch.setenv("API_THREADS", "12")
    monkeypatch.setenv("API_WORKERS", "3")
    monkeypatch.setenv("API_BIND", "127.0.0.1:9999")
    import face3d.api.gunicorn_conf as conf

    conf = importlib.reload(conf)
    assert (conf.workers, conf.threads, conf.bind) == (3, 12, ["127.0.0.1:9999"])
    assert conf.worker_class == "face3d.api.gunicorn_worker.GuardedThreadWorker"
    from gunicorn.util import load_class

    from gunicorn.workers.gthread import ThreadWorker
    assert issubclass(load_class(conf.worker_class), ThreadWorker)


def test_compose_fronts_the_api_with_a_buffering_nginx():
    services = compose_services()
    proxy = services["proxy"]
    assert proxy["image"].startswith("nginx:") and proxy["ports"] == ["8000:8000"]
    assert "ports" not in services["api"]                  # reachable only through the proxy
    source, target = proxy["volumes"][0].split(":")[:2]
    assert target == "/etc/nginx/nginx.conf"
    text = (ROOT / source).read_text()
    for directive in ("proxy_request_buffering on", "proxy_buffering on", "client_header_timeout",
                      "client_body_timeout", "server api:8000"):
        assert directive in text, directive
    read_timeout = int(re.search(r"proxy_read_timeout (\d+)s", text).group(1))
    from face3d.api.jobs import MAX_WAIT_S
    assert read_timeout > MAX_WAIT_S                      # a `Prefer: wait` answer is never cut by the proxy


def test_webhook_deliveries_have_a_worker_of_their_own():
    command = compose_services()["worker-webhooks"]["command"]
    assert command[command.index("--queues") + 1] == "webhooks" and command[command.index("--pool") + 1] == "threads"


def test_the_header_watchdog_shuts_only_the_connections_still_armed_at_their_deadline():
    import socket
    import time
    from types import SimpleNamespace

    from face3d.api.gunicorn_worker import Watchdog

    pairs = [socket.socketpair() for _ in range(3)]
    conns = [SimpleNamespace(sock=server) for server, _ in pairs]
    watchdog = Watchdog()
    tokens = [watchdog.arm(conn, timeout) for conn, timeout in zip(conns, (0.3, 0.3, 5))]
    watchdog.disarm(tokens[1])                      # its headers came in time
    time.sleep(0.8)
    closed = []
    for server, client in pairs:
        client.setblocking(False)
        try:
            closed.append(client.recv(1) == b"")    # the server side was shut down: EOF
        except BlockingIOError:
            closed.append(False)
    assert closed == [True, False, False]
    for server, client in pairs:
        server.close()
        client.close()
