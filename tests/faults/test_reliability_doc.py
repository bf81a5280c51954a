"""docs/reliability.md lists exactly the rows of the fault matrix, with their promises and count."""

from __future__ import annotations

import re
from pathlib import Path

from tests.faults.matrix import ROWS, render_counts, render_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
BLOCK = re.compile(r"<!-- fault-matrix -->\n(?P<body>.*?)<!-- /fault-matrix -->", re.DOTALL)
FIX = "regenerate the block with `python -m tests.faults.matrix`"


def _block() -> str:
    match = BLOCK.search(DOC.read_text(encoding="utf-8"))
    assert match, f"{DOC} has no <!-- fault-matrix --> block; {FIX}"
    return match.group("body")


def test_doc_lists_exactly_the_matrix_rows_in_order() -> None:
    ids = re.findall(r"^\| `([\w-]+)` \|", _block(), re.MULTILINE)
    assert ids == [row.id for row in ROWS], FIX


def test_doc_block_is_the_rendered_matrix_with_its_counts() -> None:
    body = _block()
    assert body == render_counts() + "\n\n" + render_table(), FIX
    count, passing = re.findall(r"\*\*(\d+) rows, (\d+) pass in CI", body)[0]
    assert int(count) == len(ROWS)
    assert int(passing) == len([row for row in ROWS if not row.defect])


def test_readme_links_the_page() -> None:
    readme = (DOC.parents[1] / "README.md").read_text(encoding="utf-8")
    assert "[docs/reliability.md](docs/reliability.md)" in readme
