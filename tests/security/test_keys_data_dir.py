"""`face3d keys` finds the database `face3d serve` uses (--data-dir, FACE3D_DATA_DIR, DATABASE_URL), says which one
it uses, and never makes an empty database by mistake (run from the wrong folder, `keys list` used to create
./data/face3d.db, list nothing and exit 0)."""
from __future__ import annotations

import json

from click.testing import CliRunner

from face3d.shared.cli import main

NO_DATABASE_ENV = {"DATABASE_URL": None, "FACE3D_DATA_DIR": None}


def keys(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, ["keys", *args], env={**NO_DATABASE_ENV, **(env or {})})


def test_list_in_a_folder_without_a_database_refuses_and_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = keys("list")
    assert result.exit_code == 1, result.output
    assert f"no face3d database at {tmp_path / 'data' / 'face3d.db'} (SQLite)" in result.output
    assert "--data-dir" in result.output and not (tmp_path / "data").exists()
    assert keys("revoke", "f3d_nope").exit_code == 1 and not (tmp_path / "data").exists()


def test_data_dir_reaches_the_serve_database_from_any_folder(tmp_path, monkeypatch):
    data = tmp_path / "served"
    created = keys("create", "--name", "ops", "--json", "--data-dir", str(data))
    assert created.exit_code == 0, created.output
    assert f"database: {data / 'face3d.db'} (SQLite) (new)" in created.stderr
    token_prefix = json.loads(created.stdout)["prefix"]
    monkeypatch.chdir(tmp_path)
    listed = keys("list", "--data-dir", str(data))
    assert listed.exit_code == 0 and token_prefix in listed.stdout
    assert listed.stderr.strip() == f"database: {data / 'face3d.db'} (SQLite)"
    assert token_prefix in keys("list", env={"FACE3D_DATA_DIR": str(data)}).stdout
    url = f"sqlite:///{data / 'face3d.db'}"
    by_url = keys("list", "--data-dir", str(tmp_path / "elsewhere"), env={"DATABASE_URL": url})
    assert by_url.exit_code == 0 and token_prefix in by_url.stdout       # DATABASE_URL wins, as with serve
    assert keys("revoke", token_prefix, "--data-dir", str(data)).exit_code == 0


def test_postgres_url_is_shown_without_its_password(postgres_url):
    from sqlalchemy import make_url

    shown = make_url(postgres_url).set(password="s3cret")
    result = keys("list", env={"DATABASE_URL": shown.render_as_string(hide_password=False)})
    assert "s3cret" not in result.output
