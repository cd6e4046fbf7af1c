"""What can be checked of the deployment files without a Docker engine: structure, references, and that every
command a container runs is a real entry point here."""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILES = [ROOT / "infra" / "Dockerfile", ROOT / "infra" / "Dockerfile.gpu"]
ONE_SHOT = {"migrate", "createbucket"}
# Top-level and service keys of the Compose Specification that these files may use.
TOP_LEVEL_KEYS = {"services", "volumes", "networks", "configs", "secrets", "name", "include"}
SERVICE_KEYS = {"image", "build", "command", "entrypoint", "environment", "env_file", "ports", "volumes",
                "depends_on", "healthcheck", "restart", "profiles", "deploy", "networks", "user", "working_dir"}
DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
INSTRUCTIONS = {"FROM", "ARG", "ENV", "RUN", "COPY", "ADD", "WORKDIR", "USER", "EXPOSE", "HEALTHCHECK", "CMD",
                "ENTRYPOINT", "LABEL", "VOLUME", "SHELL", "STOPSIGNAL", "ONBUILD"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def test_compose_uses_only_known_keys(compose, services):
    assert set(compose) - {k for k in compose if k.startswith("x-")} <= TOP_LEVEL_KEYS
    for name, service in services.items():
        assert set(service) <= SERVICE_KEYS, f"{name}: unknown keys {set(service) - SERVICE_KEYS}"
        assert "image" in service or "build" in service, name


def test_compose_expected_services_exist(services):
    assert {"api", "worker-cpu", "worker-gpu", "sweeper", "redis", "postgres", "minio", "createbucket",
            "migrate"} <= set(services)


def test_cpu_worker_consumes_every_queue_that_has_no_other_consumer(services):
    """Webhook deliveries and batch items have their own queues; without a consumer they would wait forever."""
    from face3d.shared.queue import QUEUES

    consumed = set()
    for service in services.values():
        command = service.get("command", [])
        if command[:2] == ["face3d", "worker"]:
            consumed |= set(command[command.index("--queues") + 1].split(","))
    assert consumed == set(QUEUES)


def test_long_running_services_have_healthchecks_and_one_shots_do_not_restart(services):
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service["restart"] == "no", name
        else:
            assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name


def test_depends_on_targets_exist_with_conditions_they_can_meet(services):
    for name, service in services.items():
        for target, rule in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on missing {target}"
            assert rule["condition"] in DEPENDS_CONDITIONS
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target} health it never reports"
            if rule["condition"] == "service_completed_successfully":
                assert target in ONE_SHOT, f"{name} waits for {target} to finish, but it runs forever"


def test_named_volumes_are_declared(compose, services):
    declared = set(compose.get("volumes") or {})
    used = {v.split(":")[0] for s in services.values() for v in s.get("volumes", []) if not v.startswith((".", "/"))}
    assert used and used <= declared


def test_only_the_gpu_worker_is_in_the_gpu_profile_and_it_reserves_an_nvidia_gpu(services):
    assert [n for n, s in services.items() if "gpu" in s.get("profiles", [])] == ["worker-gpu"]
    gpu = services["worker-gpu"]
    device = gpu["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert gpu["build"]["dockerfile"] == "infra/Dockerfile.gpu"
    assert gpu["environment"]["HRN_MODEL_DIR"].startswith("/models/")


def test_redis_keeps_an_append_only_file(services):
    command = services["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"


def test_env_files_exist_and_configure_the_service_for_compose(services):
    from face3d.shared.config import load_settings

    paths = {s["env_file"] for s in services.values() if "env_file" in s}
    assert paths == {"infra/env.example"}
    env = read_env(ROOT / "infra" / "env.example")
    settings = load_settings(env, data_dir="/tmp/face3d-compose-check")
    assert settings.storage_backend == "s3" and settings.s3_endpoint_url == "http://minio:9000"
    assert settings.database_url.startswith("postgresql+psycopg://") and "@postgres:5432/" in settings.database_url
    assert settings.broker_url == "redis://redis:6379/0"
    assert env["AWS_ACCESS_KEY_ID"] == env["MINIO_ROOT_USER"]
    assert env["AWS_SECRET_ACCESS_KEY"] == env["MINIO_ROOT_PASSWORD"]
    assert f"{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@" in settings.database_url


def read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            keyword, _, args = pending.strip().partition(" ")
            logical.append((keyword, args.strip()))
            pending = ""
    assert not pending, f"{path.name} ends inside a continued line"
    return logical


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfiles_parse_and_run_as_a_non_root_user_with_a_healthcheck(path):
    instructions = dockerfile_instructions(path)
    keywords = [k for k, _ in instructions]
    assert set(keywords) <= INSTRUCTIONS, set(keywords) - INSTRUCTIONS
    assert keywords[0] in ("FROM", "ARG") and "FROM" in keywords
    users = [args for k, args in instructions if k == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert "HEALTHCHECK" in keywords and "CMD" in keywords
    for keyword, args in instructions:
        if keyword in ("CMD", "ENTRYPOINT") or (keyword == "HEALTHCHECK" and "CMD [" in args):
            json.loads(args[args.index("["):])                     # exec form must be valid JSON


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_copy_sources_exist(path):
    for keyword, args in dockerfile_instructions(path):
        if keyword != "COPY":
            continue
        for source in shlex.split(args)[:-1]:
            assert (ROOT / source).exists(), f"{path.name}: COPY {source} has no source"


def test_gpu_image_installs_the_gpu_extra_and_builds_the_renderers():
    text = (ROOT / "infra" / "Dockerfile.gpu").read_text()
    assert re.search(r"FROM nvidia/cuda:12\.[\d.]+-cudnn\d*-devel", text)
    assert ".[gpu,postgres]" in text and "nvdiffrast" in text and "pytorch3d" in text


def container_commands(services: dict) -> list[list[str]]:
    commands = [s["command"] for n, s in services.items() if n != "createbucket" and isinstance(s.get("command"), list)]
    for path in DOCKERFILES:
        commands += [json.loads(args) for k, args in dockerfile_instructions(path) if k == "CMD"]
    return commands


def test_every_face3d_command_parses_with_the_real_cli(services):
    from face3d.shared.cli import main

    face3d = [c[1:] for c in container_commands(services) if c[0] == "face3d"]
    assert {tuple(c[:1]) for c in face3d} == {("worker",), ("db",), ("sweeper",)}
    for args in face3d:
        command, rest = main, list(args)
        while isinstance(command, click.Group):                 # descend to the leaf command, parse, don't run
            command, rest = command.get_command(click.Context(command), rest[0]), rest[1:]
        command.make_context(command.name, rest)
        assert CliRunner().invoke(main, [*args[: len(args) - len(rest)], "--help"]).exit_code == 0


def test_gunicorn_app_spec_builds_an_app_that_answers_healthz(services, tmp_path, monkeypatch):
    from gunicorn.util import import_app

    specs = {c[-1] for c in container_commands(services) if c[0] == "gunicorn"}
    assert specs == {"face3d.api.app:create_app()"}
    monkeypatch.setenv("FACE3D_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BROKER_URL", "redis://127.0.0.1:1/0")    # building the Celery app connects nowhere
    for name in ("DATABASE_URL", "STORAGE_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    app = import_app(specs.pop())
    assert app.test_client().get("/healthz").status_code == 200


def test_healthcheck_snippets_compile_and_the_worker_check_recognises_its_host(services):
    import importlib.util

    tests = [service.get("healthcheck", {}).get("test", []) for service in services.values()]
    for path in DOCKERFILES:
        tests += [["CMD", *json.loads(args[args.index("["):])] for keyword, args in dockerfile_instructions(path)
                  if keyword == "HEALTHCHECK"]
    for test in tests:
        if test[1:3] == ["python", "-c"]:
            compile(test[3], "<healthcheck>", "exec")
        if test[1:3] == ["python", "-m"]:
            assert importlib.util.find_spec(test[3]) is not None, test      # a module the image installs
    from face3d.worker import healthcheck as module

    replies = [{"face3d-cpu-1@other": {"ok": "pong"}}, {"face3d-gpu-1@box7": {"ok": "pong"}}]
    assert module.answered_here(replies, "box7")
    assert not module.answered_here(replies, "box8") and not module.answered_here(None, "box7")


def test_compose_file_validates_against_the_compose_schema():
    """docker-compose (Debian's 1.29 package, which needs no engine for `config`) validates the file against its
    bundled Compose Specification JSON schema, all profiles included. .ci/run installs it when missing."""
    import os
    import shutil
    import subprocess

    binary = shutil.which("docker-compose")
    if binary is None:
        message = "docker-compose is not installed (apt-get install docker-compose): compose schema NOT validated"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run([binary, "-f", str(COMPOSE), "--profile", "gpu", "config", "-q"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
