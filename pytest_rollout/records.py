"""Writing decision records so that a pipeline never reads a stale or missing answer as GO.

The record path is cleared when a run starts; every run that ends writes a record, even one that
ends without a decision (collection error, usage error, interrupt), which then says HOLD; and a
record that cannot be written at its path goes to a fallback path named on stderr.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_rollout.decision import Decision, build_record
from pytest_rollout.files import write_text_atomically
from pytest_rollout.instants import rfc3339

# pytest's exit codes for runs that ended without a decision, in words for the record
UNFINISHED = {
    2: "interrupted (a collection error, Ctrl-C or -x/--maxfail stopped the run)",
    3: "internal error",
    4: "usage error",
}


def clear_stale_record(path: str | None) -> str | None:
    """Remove the previous run's record; returns a problem to report, or None."""
    if not path:
        return None
    try:
        Path(path).unlink(missing_ok=True)
    except IsADirectoryError:
        return f"--rollout-decision-json {path} is a directory"
    except OSError as exc:
        return f"cannot remove the previous record at {path}: {exc.strerror or exc}"
    return None


def write_record(path: str, record: Mapping[str, Any], run_id: str) -> tuple[Path | None, str]:
    """Write the record atomically; on failure, to a fallback path.

    Returns (where it was written or None, a problem message or ""). Never raises: the exit
    status must follow the decision whatever else fails.
    """
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    try:
        _atomic_write(Path(path), text)
        return Path(path), ""
    except OSError as exc:
        problem = f"cannot write the decision record to {path}: {exc.strerror or exc}"
    fallback = Path(tempfile.gettempdir()) / f"rollout-decision-{run_id or os.getpid()}.json"
    try:
        _atomic_write(fallback, text)
    except OSError as exc:
        return None, f"{problem}; the fallback {fallback} failed too: {exc.strerror or exc}"
    return fallback, f"{problem}; written to {fallback} instead"


def _atomic_write(out: Path, text: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(out, text)


def unfinished_record(
    *, phase: str, reason: str, at: float, environment: str | None, extra: Mapping[str, Any]
) -> dict[str, Any]:
    """The HOLD record of a run that ended before it could decide."""
    return build_record(
        phase=phase,
        decision=Decision.HOLD,
        reason=reason,
        evaluated_at=rfc3339(at),
        window={},
        environment=environment,
        gates=[],
        flags={},
        actions=[],
        extra={"unfinished": True, **extra},
    )


def shout(message: str) -> None:
    """A problem the operator must see even when pytest's output is captured or redirected."""
    print(f"pytest-rollout: ERROR: {message}", file=sys.stderr, flush=True)
