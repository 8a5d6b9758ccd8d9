"""The README's standalone example runs as written (in a fresh process and directory)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_standalone_example(tmp_path: Path) -> None:
    blocks = python_blocks()
    assert len(blocks) == 1, "the README should have exactly one runnable python block"
    script = tmp_path / "example.py"
    script.write_text(blocks[0])
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "gone: no blob" in done.stdout
    assert (tmp_path / "copy.bin").read_bytes() == bytes(range(256)) * 40_000
    # drop(force=True) removed the blobs and left the directory
    assert (tmp_path / "artifacts").is_dir()
    assert not list((tmp_path / "artifacts").glob("??/*"))
