"""The repository README tells a new contributor what its development command needs."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _section(text: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README.md has no '## {title}' section"
    return match.group(1)


def test_development_section_names_mysqlclient_build_dependencies() -> None:
    """``uv sync --all-extras`` compiles mysqlclient: the apt line must come before it."""
    dev = _section((REPO / "README.md").read_text(), "Development")
    sync = dev.index("uv sync --all-packages --all-extras")
    apt = re.search(r"apt-get install -y [^\n]*libmariadb-dev[^\n]*pkg-config", dev)
    assert apt is not None, "the Development section does not say to install libmariadb-dev"
    assert apt.start() < sync, "the apt line must come before the uv sync command"


def test_services_script_installs_the_same_packages() -> None:
    """The script the test command runs installs what the README names."""
    script = (REPO / "scripts" / "services.sh").read_text()
    for package in ("libmariadb-dev", "pkg-config"):
        assert f"missing+=({package})" in script
