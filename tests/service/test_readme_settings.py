"""Every setting documented in shared/config.py's table is documented in the README's configuration table too."""
from __future__ import annotations

import re
from pathlib import Path

from face3d.shared import config

README = Path(__file__).resolve().parents[2] / "README.md"


def documented_in_config() -> set[str]:
    return set(re.findall(r"^\| ([A-Z][A-Z0-9_]+)\s+\|", config.__doc__, re.MULTILINE))


def test_config_table_is_not_empty():
    assert {"DATABASE_URL", "BROKER_URL", "STORAGE_BACKEND", "AUTH_MODE"} <= documented_in_config()


def test_every_setting_is_in_the_readme():
    readme = README.read_text()
    missing = sorted(name for name in documented_in_config() if f"`{name}`" not in readme)
    assert missing == []
