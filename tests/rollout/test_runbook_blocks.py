"""scripts/runbook_blocks.py: rehearsal blocks are read in order and run as one real bash shell."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from scripts.runbook_blocks import (
    Command,
    RunbookError,
    assigned_names,
    extract,
    referenced_names,
    script,
    substitute,
)

DOC = """\
# A runbook

```sh
echo "an ordinary block: never run"
```

```sh rehearsal
export OUT=out/here              # where things go
# a comment line
echo one > "$OUT/log" \\
    && echo two >> "$OUT/log"
(exit 3)                         # expect exit 3
```

Prose between blocks.

```sh rehearsal
GREETING=hello; echo "$GREETING" >> "$OUT/log"
```

```sh rehearsal finally
echo cleaned >> "$OUT/log"
```
"""


def write(tmp_path: Path, text: str) -> Path:
    doc = tmp_path / "runbook.md"
    doc.write_text(text)
    return doc


def run(tmp_path: Path, commands: list[Command]) -> tuple[int, list[dict[str, int]], str]:
    status = tmp_path / "status.jsonl"
    done = subprocess.run(
        ["bash", "-c", script(commands, status)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    lines = status.read_text().splitlines() if status.exists() else []
    return done.returncode, [json.loads(line) for line in lines], done.stderr


def test_blocks_are_read_in_order_with_continuations_and_expected_exits(tmp_path: Path) -> None:
    commands = extract([write(tmp_path, DOC)], tmp_path)
    assert [(c.line, c.expect_exit, c.final) for c in commands] == [
        (8, 0, False),
        (10, 0, False),
        (12, 3, False),
        (18, 0, False),
        (22, 0, True),
    ]
    assert commands[1].text.endswith('&& echo two >> "$OUT/log"')
    assert commands[1].where == "runbook.md:10"
    assert assigned_names(commands[0]) == {"OUT"} and assigned_names(commands[3]) == {"GREETING"}
    assert referenced_names(commands[3]) == {"GREETING", "OUT"}
    assert referenced_names(Command("d", 1, "echo '$NOT_EXPANDED' \"$YES\"")) == {"YES"}


def test_one_shell_runs_them_with_exports_carried_over(tmp_path: Path) -> None:
    commands = substitute(extract([write(tmp_path, DOC)], tmp_path), {"OUT": str(tmp_path)})
    (tmp_path / "out").mkdir()
    status, ran, log = run(tmp_path, commands)
    assert status == 0, log
    assert ran == [{"n": n, "exit": e} for n, e in enumerate([0, 0, 3, 0, 0])]
    assert (tmp_path / "log").read_text().split() == ["one", "two", "hello", "cleaned"]
    assert "runbook.md:12 $ (exit 3)" in log


def test_an_unexpected_exit_stops_the_run_and_the_finally_block_still_runs(
    tmp_path: Path,
) -> None:
    doc = write(tmp_path, DOC.replace("(exit 3)                         # expect", "(exit 4) #"))
    commands = substitute(extract([doc], tmp_path), {"OUT": str(tmp_path)})
    status, ran, log = run(tmp_path, commands)
    assert status == 1
    assert ran == [
        {"n": 0, "exit": 0},
        {"n": 1, "exit": 0},
        {"n": 2, "exit": 4},
        {"n": 4, "exit": 0},
    ]
    assert "runbook.md:12: exit 4, expected 0" in log
    assert (tmp_path / "log").read_text().split() == ["one", "two", "cleaned"]


def test_substitution_rewrites_only_the_named_export(tmp_path: Path) -> None:
    commands = extract([write(tmp_path, DOC)], tmp_path)
    changed = substitute(commands, {"OUT": "/tmp/a b"})
    assert changed[0].text.startswith("export OUT='/tmp/a b'  # substituted for: export OUT=")
    assert changed[1:] == commands[1:]
    with pytest.raises(RunbookError, match="must export it on exactly one line.*found 0"):
        substitute(commands, {"ROLLOUT_ACTOR": "someone"})


@pytest.mark.parametrize(
    ("block", "complaint"),
    [
        ("```sh rehearsal\ncat <<EOF\nx\nEOF\n```\n", "here-documents are not supported"),
        ("```sh rehearsal\nfor x in 1 2; do\n  echo $x\ndone\n```\n", "multi-line shell"),
        ("```sh rehearsal\necho a \\\n```\n", "ends inside a command"),
        ("```sh rehearsals\necho a\n```\n", "unknown rehearsal block 'sh rehearsals'"),
        ("```sh rehearsal\necho a\n", "never closed"),
        (
            "```sh rehearsal finally\necho a\n```\n```sh rehearsal\necho b\n```\n",
            "must come after every",
        ),
    ],
)
def test_what_cannot_run_as_written_is_refused(tmp_path: Path, block: str, complaint: str) -> None:
    with pytest.raises(RunbookError, match=complaint):
        extract([write(tmp_path, block)], tmp_path)
