"""The reference dual-memory service and the local staging stack that rollout gates run against.

A separate program from the plugin: gates reach it only over HTTP (metrics through Prometheus,
flags through the flag file or the admin flag API). Nothing here is imported by ``pytest_rollout``.
"""

from __future__ import annotations
