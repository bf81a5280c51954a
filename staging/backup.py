"""Data rollback for the staging service: online backup, offline verification, restore.

A backup is a directory with one SQLite file per memory space and ``manifest.json``. The files are
taken with SQLite's online backup API while the service keeps writing; the manifest records, per
space, the episode count and checksum that ``GET /api/v1/dual_memory/integrity`` would answer for
exactly those files (computed by the endpoint's own code), each file's SHA-256, and what the live
endpoint answered when the backup started. ``restore`` puts the files back, restarts the service
through the stack and checks the endpoint against the manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import requests

from pytest_rollout.instants import rfc3339
from staging.app import Service, _integrity
from staging.memory import SPACE_NAME
from staging.stack import NoStackRecorded, Stack, StackError
from staging.storage import SpaceStore

MANIFEST = "manifest.json"
FORMAT = 1
INTEGRITY_PATH = "/api/v1/dual_memory/integrity"
# What SQLite keeps next to a space's database: a leftover -wal would be replayed into a restored
# file, so a restore moves all of them away together.
_SPACE_FILE = re.compile(r"^(?P<space>[A-Za-z0-9][A-Za-z0-9_-]{0,63})\.db(?:-wal|-shm|-journal)?$")


class BackupError(RuntimeError):
    """A backup could not be taken, is not what its manifest says, or a restore failed."""


class RestoreRefused(BackupError):
    """The service runs and ``--stop`` was not given: nothing was changed."""


class _ReadOnlyStore(SpaceStore):
    """A space database opened read-only, so ``SpaceStore.integrity()`` can check a file.

    ``SpaceStore.__init__`` opens read-write, switches to WAL and creates the schema: checking a
    backup must not change it. Only the connection differs; the checksum is SpaceStore's code.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro",
            uri=True,
            check_same_thread=False,
            isolation_level=None,
        )


@dataclass(frozen=True)
class _SpaceFile:
    """What the integrity endpoint reads of a space: its name and its store."""

    name: str
    store: SpaceStore


class _FileMemory:
    def __init__(self, spaces: Sequence[_SpaceFile]) -> None:
        self._spaces = spaces

    def spaces(self) -> Iterator[_SpaceFile]:
        yield from self._spaces


class _OfflineService:
    """Just enough of ``staging.app.Service`` for the endpoint's ``_integrity`` over files."""

    def __init__(self, spaces: Sequence[_SpaceFile]) -> None:
        self.memory = _FileMemory(spaces)


def files_integrity(files: Mapping[str, Path]) -> dict[str, Any]:
    """The integrity endpoint's answer for these space files (name -> path), read-only.

    The endpoint's own function computes it, so a manifest and a live answer compare with ``==``.
    """
    spaces = [_SpaceFile(name, _ReadOnlyStore(path)) for name, path in sorted(files.items())]
    try:
        return _integrity(cast(Service, _OfflineService(spaces)))
    finally:
        for space in spaces:
            space.store.close()


def space_files(space_dir: Path) -> dict[str, Path]:
    """The databases the service would load from ``space_dir`` (it skips names it rejects)."""
    if not space_dir.is_dir():
        return {}
    return {p.stem: p for p in sorted(space_dir.glob("*.db")) if SPACE_NAME.match(p.stem)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _locate(workdir: Path) -> tuple[Path, Stack | None]:
    """The data dir from the state file, or ``workdir/data`` when no stack is recorded."""
    try:
        stack = Stack.load(workdir)
    except NoStackRecorded:
        # Only a missing state file means "offline": an unusable one may hide a running service.
        return Path(workdir).resolve() / "data", None
    return Path(stack.state.data_dir), stack


def _fetch_integrity(engram_url: str, timeout_s: float = 60.0) -> dict[str, Any]:
    # Generous timeout: the endpoint reads every episode back from disk.
    response = requests.get(engram_url + INTEGRITY_PATH, timeout=timeout_s)
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


def _service_alive(stack: Stack) -> bool:
    alive: bool = stack.status()["service"]["alive"]
    return alive


def _differing_spaces(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    return sorted(name for name in set(a) | set(b) if a.get(name) != b.get(name))


# -- backup ---------------------------------------------------------------------------------


def _copy_space(source: Path, target: Path) -> None:
    """Consistent copy of one live database into ``target`` (a self-contained file)."""
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.unlink(missing_ok=True)
    # Read-only source: the backup tool must never write to (or checkpoint) live data.
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(tmp)
        try:
            # pages=-1 (the default): one step inside one read transaction, so the copy is one
            # snapshot even while the service commits (WAL readers do not block the writer).
            src.backup(dst)
            # The copy inherits WAL mode; rollback-journal mode makes it a single file that a
            # read-only check can open without creating -wal/-shm next to it. The service
            # switches it back to WAL when it opens the restored file.
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    finally:
        src.close()
    _fsync_file(tmp)
    os.replace(tmp, target)


def backup(workdir: Path, out: Path) -> dict[str, Any]:
    """Back up every space of the stack in ``workdir`` into ``out``; returns the manifest."""
    data_dir, stack = _locate(workdir)
    out = Path(out).resolve()
    if out.exists() and any(out.iterdir()):
        raise BackupError(f"{out} is not empty; a backup goes into a new directory")
    out.mkdir(parents=True, exist_ok=True)

    live: dict[str, Any] | None = None
    if stack is not None:
        # Before the copy: the files can only be at or past this point.
        with contextlib.suppress(requests.RequestException, ValueError):
            live = _fetch_integrity(stack.engram_url)

    sources = space_files(data_dir / "spaces")
    copies: dict[str, Path] = {}
    for name, source in sources.items():
        copies[name] = out / f"{name}.db"
        _copy_space(source, copies[name])
    _fsync_dir(out)

    integrity = files_integrity(copies)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "created_at": rfc3339(time.time()),
        "source": {
            "data_dir": str(data_dir),
            "engram_url": stack.engram_url if stack is not None else None,
        },
        "integrity": integrity,
        "files": {
            name: {"file": path.name, "bytes": path.stat().st_size, "sha256": _sha256(path)}
            for name, path in copies.items()
        },
        "service_integrity": live,
        # Spaces written (or created) between the live answer and their copy: expected under
        # traffic, and the reason restore compares with "integrity", not with this answer.
        "service_differs": (
            _differing_spaces(integrity["spaces"], live["spaces"]) if live is not None else None
        ),
    }
    # The manifest last, atomically: a directory with a manifest is a complete backup.
    tmp = out / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    _fsync_file(tmp)
    os.replace(tmp, out / MANIFEST)
    _fsync_dir(out)
    return manifest


# -- verify ---------------------------------------------------------------------------------


def read_manifest(source: Path) -> dict[str, Any]:
    path = Path(source) / MANIFEST
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackupError(f"{path} does not exist: not a complete backup") from None
    except ValueError as exc:
        raise BackupError(f"{path} is not valid JSON: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: unknown format {manifest.get('format')!r}")
    integrity = manifest.get("integrity")
    if not (
        isinstance(manifest.get("files"), dict)
        and isinstance(integrity, dict)
        and isinstance(integrity.get("spaces"), dict)
    ):
        raise BackupError(f"{path}: no 'files' or 'integrity.spaces'; not a backup manifest")
    return manifest


def verify_backup(source: Path) -> tuple[dict[str, Any], list[str]]:
    """Check a backup's files against its manifest, offline; the manifest and the problems."""
    source = Path(source).resolve()
    manifest = read_manifest(source)
    expected: dict[str, Any] = manifest["integrity"]["spaces"]
    files: dict[str, Any] = manifest["files"]
    problems: list[str] = []
    if set(files) != set(expected):
        problems.append(
            f"manifest lists files for {sorted(files)} but integrity for {sorted(expected)}"
        )
    present = space_files(source)
    for name in sorted(set(present) - set(files)):
        problems.append(f"{name}: {present[name].name} is not in the manifest")
    readable: dict[str, Path] = {}
    for name in sorted(files):
        path = source / files[name]["file"]
        if not path.is_file():
            problems.append(f"{name}: {path.name} is missing")
            continue
        digest = _sha256(path)
        if digest != files[name]["sha256"]:
            problems.append(
                f"{name}: {path.name} changed since the backup (sha256 {digest[:12]}..., "
                f"manifest {files[name]['sha256'][:12]}...)"
            )
        store = _ReadOnlyStore(path)
        try:
            got = store.integrity()
        except sqlite3.Error as exc:
            problems.append(f"{name}: {path.name} is not a readable space database ({exc})")
            continue
        finally:
            store.close()
        want = expected.get(name, {})
        if {"episodes": got.episodes, "checksum": got.checksum} != want:
            problems.append(
                f"{name}: episodes {got.episodes} {got.checksum[:19]}..., manifest "
                f"{want.get('episodes')} {str(want.get('checksum'))[:19]}..."
            )
        readable[name] = path
    if not problems and files_integrity(readable) != manifest["integrity"]:
        problems.append("overall count or checksum differs from the manifest")
    return manifest, problems


# -- restore --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreResult:
    spaces: list[str]  # restored from the backup
    replaced_dir: Path | None  # where the files that were there went
    service_pid: int | None  # the restarted service, None when no stack is recorded
    expected: dict[str, Any]  # per space: what the integrity check must show
    answer: dict[str, Any]  # the integrity answer after the restore (of the files if no stack)
    mismatches: list[str]
    # Per restored space: episodes the service held just before the restore beyond the backup's
    # (what this rollback gives up); None when the service could not be asked.
    discarded: dict[str, int] | None

    @property
    def ok(self) -> bool:
        return not self.mismatches


class _RestoringStack(Stack):
    """``Stack.restart_service()`` with the file swap between the stop and the start.

    ``restart_service`` stops exactly the recorded PID (checked against /proc cmdline,
    SIGTERM, SIGKILL after 10 s) and starts the service again on the same port through
    ``_start_service``; the stack has no public stop-only call, so the swap runs there.
    """

    def __init__(self, stack: Stack, swap: Callable[[], None]) -> None:
        super().__init__(stack.state)
        self._swap: Callable[[], None] | None = swap

    def _start_service(self, timeout_s: float = 30.0) -> None:
        swap, self._swap = self._swap, None
        if swap is not None:
            swap()
        super()._start_service(timeout_s)


def _swap_files(
    space_dir: Path, source: Path, manifest: Mapping[str, Any], spaces: Sequence[str] | None
) -> tuple[list[str], Path | None]:
    """Move the current files of the restored spaces aside and copy the backup's in."""
    files: Mapping[str, Any] = manifest["files"]
    restored = sorted(files) if spaces is None else sorted(spaces)
    space_dir.mkdir(parents=True, exist_ok=True)
    # A full restore also moves spaces created after the backup away: the data is the backup's.
    scope = None if spaces is None else set(spaces)
    moving = [
        p
        for p in sorted(space_dir.iterdir())
        if (m := _SPACE_FILE.match(p.name)) and (scope is None or m["space"] in scope)
    ]
    replaced_dir: Path | None = None
    if moving:
        root = space_dir.parent / "replaced"
        root.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        replaced_dir = Path(tempfile.mkdtemp(prefix=f"{stamp}-", dir=root))
        for path in moving:
            os.replace(path, replaced_dir / path.name)
        _fsync_dir(replaced_dir)
    for name in restored:
        tmp = space_dir / f".{name}.db.restore"
        shutil.copyfile(source / files[name]["file"], tmp)
        _fsync_file(tmp)
        os.replace(tmp, space_dir / f"{name}.db")
    _fsync_dir(space_dir)
    return restored, replaced_dir


def restore(
    workdir: Path,
    source: Path,
    *,
    stop: bool = False,
    spaces: Sequence[str] | None = None,
    say: Callable[[str], None] = print,
) -> RestoreResult:
    """Put the backup in ``source`` back into the stack's data dir and verify it.

    ``spaces``: only these (default every space; spaces created after the backup are moved
    away too). Refuses while the service runs unless ``stop``.
    """
    source = Path(source).resolve()
    manifest, problems = verify_backup(source)
    if problems:
        raise BackupError(
            f"backup {source} does not match its manifest, nothing was changed:\n  "
            + "\n  ".join(problems)
        )
    unknown = sorted(set(spaces or ()) - set(manifest["files"]))
    if unknown:
        raise BackupError(f"not in the backup: {', '.join(unknown)}; nothing was changed")
    say(
        f"backup {source}: verified ({len(manifest['files'])} spaces, "
        f"{manifest['integrity']['episodes']} episodes, taken {manifest['created_at']})"
    )

    data_dir, stack = _locate(workdir)
    space_dir = data_dir / "spaces"
    if stack is not None and _service_alive(stack):
        if not stop:
            raise RestoreRefused(
                f"the service is running (pid {stack.state.service_pid}, {stack.engram_url}); "
                "restore replaces its files: add --stop to stop it, restore and start it again"
            )
        say(f"stopping service pid {stack.state.service_pid}")

    before: dict[str, Any] | None = None
    if stack is not None:
        # Best effort (a damaged space may make the endpoint fail): what the restore discards.
        with contextlib.suppress(requests.RequestException, ValueError):
            before = _fetch_integrity(stack.engram_url)

    expected: dict[str, Any] = {}
    outcome: dict[str, Any] = {}

    def swap() -> None:
        # After the stop: what the spaces that are not restored hold must survive unchanged.
        if spaces is not None:
            kept = {n: p for n, p in space_files(space_dir).items() if n not in set(spaces)}
            expected.update(files_integrity(kept)["spaces"])
        outcome["restored"], outcome["replaced"] = _swap_files(space_dir, source, manifest, spaces)
        for name in outcome["restored"]:
            expected[name] = manifest["integrity"]["spaces"][name]
        if before is not None and outcome["replaced"] is not None:
            # Kept with the replaced files: the incident record of what was there.
            record = outcome["replaced"] / "integrity-before-restore.json"
            record.write_text(json.dumps(before, indent=2) + "\n")

    pid: int | None = None
    if stack is None:
        swap()
        # No service to ask: the same check over the files it would load.
        answer = files_integrity(space_files(space_dir))
    else:
        restarting = _RestoringStack(stack, swap)
        try:
            restarting.restart_service()
        except (StackError, OSError) as exc:
            where = outcome.get("replaced")
            raise BackupError(
                f"restore failed after the service was stopped: {exc}. The service is NOT "
                f"running; files that were replaced are in {where or '(none moved)'}. "
                f"Fix the cause and run restore again (no --stop needed)."
            ) from exc
        pid = restarting.state.service_pid
        say(
            f"restored {len(outcome['restored'])} space(s); service restarted, pid {pid}, "
            f"{restarting.engram_url}"
        )
        answer = _fetch_integrity(restarting.engram_url)

    actual: dict[str, Any] = answer["spaces"]
    mismatches = [
        f"{name}: expected {expected.get(name, 'no such space')}, "
        f"integrity shows {actual.get(name, 'no such space')}"
        for name in _differing_spaces(expected, actual)
    ]
    discarded: dict[str, int] | None = None
    if before is not None:
        backed_up = manifest["integrity"]["spaces"]
        # Spaces created after the backup count whole; a full restore moves them away too.
        gone = (
            outcome["restored"]
            if spaces is not None
            else sorted(set(before["spaces"]) | set(backed_up))
        )
        discarded = {
            name: max(
                0,
                before["spaces"].get(name, {}).get("episodes", 0)
                - backed_up.get(name, {}).get("episodes", 0),
            )
            for name in gone
        }
    return RestoreResult(
        spaces=outcome["restored"],
        replaced_dir=outcome["replaced"],
        service_pid=pid,
        expected=expected,
        answer=answer,
        mismatches=mismatches,
        discarded=discarded,
    )
