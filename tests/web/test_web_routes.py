"""The page and its assets as the API serves them (no browser): offline-complete, public when keys are required."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.stubs import RecordingQueue

STATIC = Path(__file__).resolve().parents[2] / "api" / "static"
LOCAL_IMPORT = re.compile(r"""(?:import|export)\s[^;]*?from\s+["'](\.{1,2}/[^"']+)["']""")


@pytest.fixture
def make_client(tmp_path):
    from face3d.api.app import create_app
    from face3d.shared.config import load_settings
    from face3d.shared.db import make_engine, make_session_factory
    from face3d.shared.migrations import upgrade
    from face3d.shared.storage import LocalStorage

    def make(**env: str):
        database = f"sqlite:///{tmp_path / 'face3d.db'}"
        upgrade(database)
        settings = load_settings({"FACE3D_DATA_DIR": str(tmp_path), **env})
        app = create_app(settings, session_factory=make_session_factory(make_engine(database)),
                         storage=LocalStorage(tmp_path / "storage"), queue=RecordingQueue())
        return app.test_client()

    return make


def test_index_is_the_page_with_a_strict_policy(make_client):
    response = make_client().get("/", headers={"Accept": "text/html,*/*;q=0.8"})
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert b'<script type="module" src="assets/app.js">' in response.data
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy


def test_index_still_answers_json_to_api_clients(make_client):
    response = make_client().get("/", headers={"Accept": "application/json"})
    assert response.get_json()["jobs"] == "/v1/jobs"


@pytest.mark.parametrize("name, mimetype", [
    ("app.js", "javascript"), ("app.css", "text/css"), ("vendor/three.js", "javascript"),
])
def test_assets_are_served(make_client, name, mimetype):
    response = make_client().get(f"/assets/{name}")
    assert response.status_code == 200 and response.mimetype.endswith(mimetype)
    assert response.data == (STATIC / name).read_bytes()


def test_the_page_needs_nothing_from_other_servers():
    """Every module import resolves to a vendored file; no CDN or remote URL anywhere (the page works offline)."""
    sources = [path for path in STATIC.rglob("*") if path.suffix in (".html", ".js", ".css")]
    for path in sources:
        text = path.read_text()
        if path.parent.name != "vendor":
            assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), path
            assert "@import url(http" not in text, path
        for target in LOCAL_IMPORT.findall(text):
            assert (path.parent / target).resolve().is_file(), f"{path.name} imports missing {target}"
    assert len(sources) >= 7


def test_page_is_public_when_api_keys_are_required(make_client):
    client = make_client(AUTH_MODE="on")
    assert client.get("/").status_code == 200
    assert client.get("/assets/app.js").status_code == 200
    response = client.get("/v1/jobs")
    assert response.status_code == 401 and response.get_json(force=True)["code"] == "unauthorized"
