"""The settings are declared once (shared/config.py); the README's configuration table and infra/env.example are
checked against the declarations: every row's variable, default and meaning, and every variable the example sets."""
from __future__ import annotations

import re
from pathlib import Path

from face3d.shared.config import documented_settings, load_settings
from face3d.shared.engines.hrn.runner import MODEL_DIR_ENV

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
ENV_EXAMPLE = ROOT / "infra" / "env.example"
ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]+)` \| (.*?) \| (.*) \|$")
# Documented with the settings, read where they are used: the HRN adapter's model folder.
READ_ELSEWHERE = {MODEL_DIR_ENV}
# What env.example sets for the other containers of the compose file (PostgreSQL, MinIO) and for boto3.
OTHER_SERVICES = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD",
                  "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def readme_rows() -> list[tuple[str, str, str]]:
    return [match.groups() for line in README.read_text().splitlines() if (match := ROW.match(line))]


def test_the_declarations_are_complete():
    declared = {setting.env for setting in documented_settings()}
    assert {"DATABASE_URL", "BROKER_URL", "STORAGE_BACKEND", "AUTH_MODE"} <= declared
    assert len(declared) == len(documented_settings())                  # one declaration per variable
    assert all(setting.doc and setting.shown for setting in documented_settings())


def test_the_readme_table_is_the_declarations():
    rows = [row for row in readme_rows() if row[0] not in READ_ELSEWHERE]
    assert rows == [(s.env, s.shown, s.doc) for s in documented_settings()]
    assert {row[0] for row in readme_rows()} - {s.env for s in documented_settings()} == READ_ELSEWHERE


def test_every_setting_is_in_the_readme():
    readme = README.read_text()
    missing = sorted(s.env for s in documented_settings() if f"`{s.env}`" not in readme)
    assert missing == []


def test_env_example_sets_only_declared_settings_and_they_load():
    pairs = [line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    names = {name.strip() for name, _ in pairs}
    declared = {s.env for s in documented_settings()}
    assert names - declared - OTHER_SERVICES == set(), "env.example sets a variable no setting declares"
    assert names & declared                                              # it configures the service at all
    load_settings({name.strip(): value.strip() for name, value in pairs}, data_dir="/tmp/face3d-env-check")
