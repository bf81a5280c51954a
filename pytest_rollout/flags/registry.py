"""Pick the flag backend for a URI: built-ins plus the ``pytest_rollout.flag_backends`` group.

A backend is a class with ``from_uri(uri, *, audit_log, context) -> FlagController``, registered
under its URI scheme, e.g. in a plugin package's pyproject::

    [project.entry-points."pytest_rollout.flag_backends"]
    launchdarkly = "my_pkg.flags:LaunchDarklyController"

``--rollout-flags launchdarkly://project/env`` then selects it.  Subclassing
:class:`pytest_rollout.flags.controller.AuditedController` gives the audit log and the
``set``/``snapshot``/``restore`` methods for free.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from pytest_rollout.flags.audit import ChangeContext
from pytest_rollout.flags.base import FlagController, FlagValueError

ENTRY_POINT_GROUP = "pytest_rollout.flag_backends"
# Used when the package is not installed (entry points absent), and for https -> http.
BUILTIN_BACKENDS: dict[str, str] = {
    "flagd-file": "pytest_rollout.flags.flagd_file:FlagdFileController",
    "http": "pytest_rollout.flags.http:HttpFlagController",
    "https": "pytest_rollout.flags.http:HttpFlagController",
}


class UnknownBackendError(FlagValueError):
    """No backend is registered for the URI's scheme."""


def scheme_of(uri: str) -> str:
    """``flagd-file:x.json`` -> ``flagd-file``; ``https://h`` -> ``https``; '' if none."""
    head, sep, _ = uri.partition(":")
    if not sep or not head or len(head) == 1:  # "C:\\flags.json" is a path, not a scheme
        return ""
    return head.lower()


def _load(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def available_backends() -> dict[str, str]:
    """scheme -> "module:attribute" of every known backend (entry points override built-ins)."""
    from importlib.metadata import entry_points

    backends = dict(BUILTIN_BACKENDS)
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        backends[entry_point.name] = entry_point.value
    return backends


def backend_for(uri: str) -> Any:
    """The backend class for ``uri``; UnknownBackendError names the URI and the known schemes."""
    backends = available_backends()
    scheme = scheme_of(uri)
    if scheme not in backends:
        known = ", ".join(f"{name}:" for name in sorted(backends))
        shown = uri.split("@")[-1] if "://" in uri else uri  # never echo user:password@
        raise UnknownBackendError(
            f"no flag backend for {shown!r} (scheme {scheme or 'missing'!r}); known schemes: "
            f"{known}. Example: flagd-file:flags.json or http://127.0.0.1:8080"
        )
    return _load(backends[scheme])


def open_controller(
    uri: str,
    *,
    audit_log: Path | None,
    actor: str,
    environment: str | None,
    phase: str | None,
    run_id: str,
) -> FlagController:
    """The controller for ``uri`` (``flagd-file:PATH``, ``http(s)://host:port``, or a plugin's).

    ``audit_log`` None means the backend's default: ``<PATH>.audit.jsonl`` for flagd-file,
    ``./rollout-flags-audit.jsonl`` for HTTP.  Nothing is read or written until it is used.
    """
    backend = backend_for(uri)
    context = ChangeContext(actor=actor, environment=environment, phase=phase, run_id=run_id)
    controller: FlagController = backend.from_uri(uri, audit_log=audit_log, context=context)
    return controller
