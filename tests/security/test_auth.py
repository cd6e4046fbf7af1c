"""API keys on a real database (SQLite and PostgreSQL): ownership (404 for other keys), admin sees all, 401s,
tokens hashed at rest, public endpoints, production start-up rules, and the `face3d keys` commands."""
from __future__ import annotations

import json
import logging

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from face3d.shared import keys
from tests.api.fakes import assert_problem, post_photo
from tests.security.conftest import new_caller
from tests.stubs import RecordingQueue


def submit(client, data: bytes, caller, **kwargs) -> str:
    response = post_photo(client, data, headers=caller.headers, **kwargs)
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()["id"]


def test_other_keys_job_is_404_and_admin_sees_it(client, callers, obama_bytes):
    job_id = submit(client, obama_bytes, callers.a)
    assert client.get(f"/v1/jobs/{job_id}", headers=callers.a.headers).status_code == 200
    missing_id = "0" + "f" * 31
    missing = assert_problem(client.get(f"/v1/jobs/{missing_id}", headers=callers.b.headers), 404, "not_found")
    hidden = assert_problem(client.get(f"/v1/jobs/{job_id}", headers=callers.b.headers), 404, "not_found")
    assert hidden["detail"] == missing["detail"].replace(missing_id, job_id)    # same answer as a missing job
    for method, path in [("post", f"/v1/jobs/{job_id}/cancel"), ("delete", f"/v1/jobs/{job_id}"),
                         ("get", f"/v1/jobs/{job_id}/artifacts/result.json"),
                         ("get", f"/v1/jobs/{job_id}/webhook-deliveries")]:
        assert_problem(getattr(client, method)(path, headers=callers.b.headers), 404, "not_found")
    assert client.get(f"/v1/jobs/{job_id}", headers=callers.a.headers).get_json()["state"] == "queued"
    assert client.get(f"/v1/jobs/{job_id}", headers=callers.admin.headers).status_code == 200


def test_list_shows_only_own_jobs_admin_all(client, callers, obama_bytes):
    a_jobs = {submit(client, obama_bytes, callers.a) for _ in range(2)}
    b_job = submit(client, obama_bytes, callers.b)

    def listed(caller) -> set[str]:
        response = client.get("/v1/jobs?limit=100", headers=caller.headers)
        assert response.status_code == 200
        return {item["id"] for item in response.get_json()["items"]}

    assert listed(callers.a) == a_jobs
    assert listed(callers.b) == {b_job}
    assert listed(callers.admin) >= a_jobs | {b_job}


def test_missing_bad_and_revoked_keys_get_401(client, session_factory, obama_bytes):
    caller = new_caller(session_factory)
    for headers in ({}, {"Authorization": "Basic dXNlcjpwdw=="}, {"Authorization": "Bearer "},
                    {"Authorization": "Bearer f3d_not-a-real-key"}, {"Authorization": "Bearer " + "x" * 5000}):
        response = client.get("/v1/jobs", headers=headers)
        assert_problem(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/v1/jobs", headers=caller.headers).status_code == 200
    keys.revoke_key(session_factory, caller.key_id)
    response = post_photo(client, obama_bytes, headers=caller.headers)
    assert_problem(response, 401, "unauthorized")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_public_endpoints_need_no_key(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/v1/openapi.json").status_code == 200
    assert client.get("/readyz").status_code in (200, 503)
    assert_problem(client.get("/v1/jobs"), 401, "unauthorized")
    assert_problem(client.get("/v1/no-such-thing"), 401, "unauthorized")   # routes are not revealed either


def test_tokens_are_hashed_at_rest(session_factory, db_url):
    created = keys.create_key(session_factory, name="hash-check")
    assert created.token.startswith("f3d_") and len(created.token) >= 40
    with session_factory() as session:
        dump = " ".join(str(value) for row in session.execute(sa.text("SELECT * FROM api_keys")) for value in row)
    assert created.token not in dump
    assert keys.hash_token(created.token) in dump
    assert keys.authenticate(session_factory, created.token).id == created.key.id
    assert keys.authenticate(session_factory, created.token[:-1] + ("A" if created.token[-1] != "A" else "B")) is None


def test_idempotency_keys_are_per_api_key(client, callers, obama_bytes):
    headers_a = {**callers.a.headers, "Idempotency-Key": "same-key"}
    headers_b = {**callers.b.headers, "Idempotency-Key": "same-key"}
    first = post_photo(client, obama_bytes, headers=headers_a).get_json()["id"]
    replay = post_photo(client, obama_bytes, headers=headers_a)
    assert replay.get_json()["id"] == first and replay.headers["Idempotent-Replayed"] == "true"
    other = post_photo(client, obama_bytes, headers=headers_b)
    assert other.status_code == 202 and other.get_json()["id"] != first


def test_auth_off_is_open_and_warns_loudly(session_factory, local_storage, tmp_path, caplog, obama_bytes):
    from face3d.api.app import create_app
    from face3d.shared.config import load_settings

    with caplog.at_level(logging.WARNING, logger="face3d.api.auth"):
        app = create_app(load_settings(env={}, data_dir=tmp_path), session_factory=session_factory,
                         storage=local_storage, queue=RecordingQueue())
    assert any("AUTH_MODE=off" in record.getMessage() for record in caplog.records)
    client = app.test_client()
    job = post_photo(client, obama_bytes).get_json()
    assert client.get(f"/v1/jobs/{job['id']}").status_code == 200


@pytest.mark.parametrize("env, complaint", [
    ({"FACE3D_ENV": "production"}, "AUTH_MODE=on"),
    ({"FACE3D_ENV": "production", "AUTH_MODE": "on"}, "at least one API key"),
])
def test_production_refuses_to_start_open_or_keyless(tmp_path, env, complaint):
    from face3d.api.app import create_app
    from face3d.shared.config import ConfigError, load_settings
    from face3d.shared.db import make_engine, make_session_factory
    from face3d.shared.migrations import upgrade

    url = f"sqlite:///{tmp_path / 'empty.db'}"
    upgrade(url)
    sf = make_session_factory(make_engine(url))
    with pytest.raises(ConfigError, match=complaint):
        create_app(load_settings(env=env, data_dir=tmp_path), session_factory=sf, storage=object(),
                   queue=RecordingQueue())
    if env.get("AUTH_MODE") == "on":
        keys.create_key(sf, admin=True)
        assert create_app(load_settings(env=env, data_dir=tmp_path), session_factory=sf, storage=object(),
                          queue=RecordingQueue())


def test_keys_cli_create_list_revoke(tmp_path, monkeypatch):
    from face3d.shared.cli import main
    from face3d.shared.db import make_engine, make_session_factory

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("FACE3D_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    created = runner.invoke(main, ["keys", "create", "--admin", "--name", "ops", "--json"])
    assert created.exit_code == 0, created.output
    info = json.loads(created.stdout)             # stderr names the database
    assert info["token"].startswith("f3d_") and info["webhook_secret"].startswith("whsec_") and info["admin"]
    plain = runner.invoke(main, ["keys", "create", "--name", "client"])
    assert plain.exit_code == 0 and "not shown again" in plain.output
    listed = runner.invoke(main, ["keys", "list"])
    assert listed.exit_code == 0 and info["prefix"] in listed.output and info["token"] not in listed.output
    assert runner.invoke(main, ["keys", "revoke", info["prefix"]]).exit_code == 0
    sf = make_session_factory(make_engine(url))
    assert keys.authenticate(sf, info["token"]) is None
    missing = runner.invoke(main, ["keys", "revoke", "nope"])
    assert missing.exit_code == 1 and "error: not_found" in missing.output


def test_client_sends_the_key_from_the_environment(monkeypatch):
    from face3d.client.http import Face3dClient

    monkeypatch.setenv("FACE3D_API_KEY", "f3d_from_env")
    assert Face3dClient("http://x").session.headers["Authorization"] == "Bearer f3d_from_env"
    assert Face3dClient("http://x", api_key="f3d_given").session.headers["Authorization"] == "Bearer f3d_given"


def test_auth_tables_match_their_migration(db_url):
    """ORM models of this feature and the migrated schema agree (autogenerate finds nothing for them)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    import face3d.shared.models  # noqa: F401  (every table on Base.metadata)
    from face3d.shared.db import Base, make_engine

    engine = make_engine(db_url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    mine = ("api_keys", "webhook_deliveries", "owner_id", "webhook_url", "ix_jobs_owner")
    assert [d for d in diff if d[0] != "remove_table" and any(name in repr(d) for name in mine)] == []
