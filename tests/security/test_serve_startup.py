"""`face3d serve` refuses an unsafe production start with one clear line, before any child process starts."""
from __future__ import annotations

from click.testing import CliRunner

from face3d.shared.cli import main
from tests.conftest import free_port


def test_production_serve_without_auth_is_refused_cleanly(tmp_path, monkeypatch):
    monkeypatch.setenv("FACE3D_ENV", "production")
    monkeypatch.setenv("AUTH_MODE", "off")
    result = CliRunner().invoke(main, ["serve", "--port", str(free_port()), "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "AUTH_MODE=on" in result.output
    assert "Traceback" not in result.output


def test_production_serve_with_auth_but_no_key_is_refused_cleanly(tmp_path, monkeypatch):
    monkeypatch.setenv("FACE3D_ENV", "production")
    monkeypatch.setenv("AUTH_MODE", "on")
    result = CliRunner().invoke(main, ["serve", "--port", str(free_port()), "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "face3d keys create" in result.output
