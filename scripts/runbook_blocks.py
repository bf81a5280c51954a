"""The runbook's executable blocks: what the rehearsal runs is what the runbook says.

A fenced block whose info string is ``sh rehearsal`` holds commands an operator types, in order,
in one shell from the repository root; ``sh rehearsal finally`` holds the clean-up that runs even
after a command failed (stop the traffic, stop the stack). ``extract`` reads them in document
order, ``substitute`` applies the documented substitution table (it rewrites the value of an
``export NAME=value`` line and nothing else), and ``script`` turns them into one bash program
that logs each command with its place in the runbook, checks its exit status and stops at the
first unexpected one.

Conventions (docs/operations/dual_memory_rollout.md, "Rehearse in staging", states them too):
- one command per line; a line ending in ``\\`` continues on the next; comment lines are skipped;
- a command must exit 0, unless its last line ends in a comment ``# expect exit N``;
- no here-documents and no multi-line ``if``/``for``/``while``/``case``/``{ }``: each command is
  checked on its own, so it must be one.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

MARK = "rehearsal"
FINALLY = "finally"
_FENCE = re.compile(r"^(`{3,}|~{3,})\s*(.*?)\s*$")
_EXPECT = re.compile(r"(?:^|\s)#\s*expect exit (\d+)\b")
_COMPOUND = re.compile(r"^(if|for|while|until|case|function|select)\b|^[{(]\s*$")
_EXPORT = re.compile(r"^export\s+([A-Za-z_][A-Za-z0-9_]*)=(\S*)\s*(#.*)?$")
_ASSIGN = re.compile(r"(?:^|[\s;])([A-Za-z_][A-Za-z0-9_]*)=")
_REFERENCE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


class RunbookError(ValueError):
    """A rehearsal block the runner cannot run as written; the message says where and why."""


@dataclass(frozen=True)
class Command:
    """One command of a rehearsal block, as written (continuation lines kept)."""

    doc: str  # the document, as given to ``extract`` relative to its root
    line: int  # first line of the command in the document (1-based)
    text: str
    expect_exit: int = 0
    final: bool = False  # from a ``sh rehearsal finally`` block

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    def words(self) -> list[str]:
        """The command's words as the shell splits them (comments dropped, quotes removed)."""
        return shlex.split(self.text.replace("\\\n", " "), comments=True)


def extract(docs: Sequence[Path], root: Path) -> list[Command]:
    """Every command of every rehearsal block of ``docs``, in document order."""
    commands: list[Command] = []
    for doc in docs:
        name = doc.resolve().relative_to(root.resolve()).as_posix()
        commands += _commands_of(name, doc.read_text(encoding="utf-8").splitlines())
    finals = [c for c in commands if c.final]
    if finals and any(not c.final for c in commands[commands.index(finals[0]) :]):
        raise RunbookError(
            f"{finals[0].where}: a 'sh {MARK} {FINALLY}' block must come after every "
            f"'sh {MARK}' block (it is the clean-up that runs last); move it to the end"
        )
    return commands


def _commands_of(doc: str, lines: list[str]) -> list[Command]:
    commands: list[Command] = []
    fence: str | None = None
    final: bool | None = None  # None: not inside a rehearsal block
    pending: list[str] = []
    start = 0
    for number, line in enumerate(lines, start=1):
        match = _FENCE.match(line)
        if fence is None:
            if match:
                fence, final = match.group(1), _block_kind(doc, number, match.group(2))
            continue
        if match and match.group(1).startswith(fence) and not match.group(2):
            if pending:
                raise RunbookError(
                    f"{doc}:{start}: the block ends inside a command (its last line ends in "
                    "'\\'); finish the command or drop the '\\'"
                )
            fence, final = None, None
            continue
        if final is None:
            continue
        if not pending:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            start = number
            _refuse_unsupported(doc, number, line)
        pending.append(line.rstrip())
        if pending[-1].endswith("\\"):
            continue
        expect = _EXPECT.search(pending[-1])
        text = "\n".join(pending)
        commands.append(Command(doc, start, text, int(expect.group(1)) if expect else 0, final))
        pending = []
    if fence is not None:
        raise RunbookError(f"{doc}: a code block is never closed; add the closing {fence}")
    return commands


def _block_kind(doc: str, line: int, info: str) -> bool | None:
    """None for an ordinary block, else whether it is a ``finally`` block."""
    words = info.split()
    if not any(MARK in word for word in words):
        return None
    if words == ["sh", MARK]:
        return False
    if words == ["sh", MARK, FINALLY]:
        return True
    raise RunbookError(
        f"{doc}:{line}: unknown rehearsal block '{info}'; write 'sh {MARK}' (run in order) "
        f"or 'sh {MARK} {FINALLY}' (clean-up, runs even after a failure)"
    )


def _refuse_unsupported(doc: str, line: int, text: str) -> None:
    code = text.split(" #", 1)[0]
    if re.search(r"<<-?\s*['\"]?\w", code):
        raise RunbookError(
            f"{doc}:{line}: here-documents are not supported in rehearsal blocks; put the text "
            "in a file of the repository, or a check into scripts/rehearse.py"
        )
    if _COMPOUND.match(text.strip()):
        raise RunbookError(
            f"{doc}:{line}: multi-line shell constructs are not supported in rehearsal blocks "
            "(each command's exit status is checked on its own); write one command per line"
        )


def substitute(commands: Sequence[Command], table: Mapping[str, str]) -> list[Command]:
    """Rewrite the value of ``export NAME=value`` for each NAME of ``table``; nothing else.

    Each NAME must be exported by exactly one command of its own (``export NAME=value``, one
    assignment), so the table's entries are visible in the runbook as ordinary exports.
    """
    out = list(commands)
    for name, value in table.items():
        found = [i for i, c in enumerate(out) if _exported(c) == name]
        if len(found) != 1:
            raise RunbookError(
                f"the substitution table rewrites {name}, so the rehearsal blocks must export it "
                f"on exactly one line of its own ('export {name}=...'); found {len(found)}"
            )
        (i,) = found
        was = out[i].text.strip()
        text = f"export {name}={shlex.quote(value)}  # substituted for: {was}"
        out[i] = replace(out[i], text=text)
    return out


def _exported(command: Command) -> str | None:
    match = _EXPORT.match(command.text.strip())
    return match.group(1) if match else None


def assigned_names(command: Command) -> set[str]:
    """Shell variables the command sets (``NAME=...``, ``export A=.. B=..``)."""
    code = " ".join(line.split(" #", 1)[0] for line in command.text.splitlines())
    return set(_ASSIGN.findall(code))


def referenced_names(command: Command) -> set[str]:
    """Shell variables the command expands (``$NAME``, ``${NAME}``), outside single quotes."""
    code = " ".join(line.split(" #", 1)[0] for line in command.text.splitlines())
    return set(_REFERENCE.findall(re.sub(r"'[^']*'", "''", code)))


def script(commands: Iterable[Command], status_file: Path) -> str:
    """One bash program running ``commands`` in order in one shell (exports carry over).

    Each command is logged with its place in the runbook; its exit status goes to
    ``status_file`` as a JSON line ``{"n": index, "exit": status}``. The first status other
    than the expected one stops the ordinary commands; the ``finally`` commands then all run.
    The program exits 0 only when every command exited as expected.
    """
    main: list[str] = []
    final: list[str] = []
    for n, command in enumerate(commands):
        stop = "return 1" if not command.final else "__rehearse_result=1"
        body = main if not command.final else final
        said = shlex.quote(f"{command.where} $ {command.text}")
        bad = shlex.quote(f"{command.where}: exit ")
        expected = shlex.quote(f", expected {command.expect_exit}")
        body += [
            f"__rehearse_say {said}",
            command.text,
            f"__rehearse_rc=$?; __rehearse_ran {n} $__rehearse_rc",
            f'if [ "$__rehearse_rc" -ne {command.expect_exit} ]; then',
            f'  __rehearse_say {bad}"$__rehearse_rc"{expected}; {stop}',
            "fi",
        ]
    return "\n".join(
        [
            "# Generated by scripts/rehearse.py from the runbook's rehearsal blocks: edit the",
            "# runbook, not this file.",
            f"__rehearse_status_file={shlex.quote(str(status_file))}",
            "__rehearse_say() { printf '[rehearse %(%H:%M:%S)T] %s\\n' -1 \"$1\" >&2; }",
            "__rehearse_ran() {",
            '  printf \'{"n": %s, "exit": %s}\\n\' "$1" "$2" >> "$__rehearse_status_file"',
            "}",
            "__rehearse_main() {",
            ":",
            *main,
            "}",
            "__rehearse_main; __rehearse_result=$?",
            '[ "$__rehearse_result" -eq 0 ] || __rehearse_say "stopped there; clean-up follows"',
            *final,
            'exit "$__rehearse_result"',
            "",
        ]
    )
