"""Settings from the environment: defaults for the embedded mode, parsing, and clear errors for bad values."""
from __future__ import annotations

from pathlib import Path

import pytest

from face3d.shared.config import ConfigError, load_settings
from face3d.shared.queue import queue_for


def test_defaults_run_everything_under_data_dir(tmp_path):
    settings = load_settings({"FACE3D_DATA_DIR": str(tmp_path)})
    assert settings.data_dir == tmp_path.resolve()
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'face3d.db'}"
    assert settings.uses_embedded_broker and settings.storage_backend == "local"
    assert settings.storage_dir == tmp_path.resolve() / "storage"
    assert settings.max_upload_bytes == 20 * 1024 * 1024 and settings.default_engine == "cpu"
    assert settings.visibility_timeout_s > settings.job_time_limit_s


def test_relative_data_dir_becomes_absolute():
    assert load_settings({}).data_dir == (Path.cwd() / "data").resolve()


def test_environment_values_are_parsed():
    settings = load_settings({
        "DATABASE_URL": "postgresql+psycopg://u@db/face3d", "BROKER_URL": "redis://r:6379/0",
        "STORAGE_BACKEND": "S3", "S3_BUCKET": "b", "S3_PREFIX": "p/", "S3_ENDPOINT_URL": "http://minio:9000",
        "MAX_UPLOAD_BYTES": "1000", "JOB_TIME_LIMIT_S": "4000", "GPU_ENGINES": "hrn, big",
        "PUBLIC_BASE_URL": "https://faces.example",
    })
    assert settings.storage_backend == "s3" and settings.s3_endpoint_url == "http://minio:9000"
    assert not settings.uses_embedded_broker and settings.max_upload_bytes == 1000
    assert settings.visibility_timeout_s == 8000
    assert queue_for(settings, "big") == "gpu" and queue_for(settings, "cpu") == "cpu"
    assert settings.public_base_url == "https://faces.example"


def test_overrides_win():
    settings = load_settings({"MAX_PIXELS": "10"}, max_pixels=99, broker_url="redis://x")
    assert settings.max_pixels == 99 and settings.broker_url == "redis://x"


@pytest.mark.parametrize("env", [
    {"MAX_UPLOAD_BYTES": "lots"}, {"STORAGE_BACKEND": "ftp"}, {"JOB_TIME_LIMIT_S": "-1"},
    {"JOB_TIME_LIMIT_S": "600", "VISIBILITY_TIMEOUT_S": "600"},
])
def test_bad_values_raise_config_error(env):
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert caught.value.code.value == "invalid_request"


def test_unknown_override_is_refused():
    with pytest.raises(ConfigError):
        load_settings({}, no_such_setting=1)
