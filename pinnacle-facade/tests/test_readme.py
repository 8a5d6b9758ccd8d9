"""The README's Python session runs as written (doctest) on the embedded default."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.duckdb
@pytest.mark.sqlite
def test_readme_session() -> None:
    blocks = re.findall(r"```python\n(>>> .*?)```", README.read_text(), flags=re.DOTALL)
    assert blocks, "the README has no interactive session"
    parser = doctest.DocTestParser()
    test = parser.get_doctest("\n".join(blocks), {}, "README", str(README), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test, clear_globs=False)
    result = runner.summarize(verbose=False)
    assert result.attempted > 5
    assert result.failed == 0
    test.globs["db"].close()
