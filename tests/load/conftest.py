"""Toy targets for the soak and baseline tests: real HTTP servers in child processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.load.helpers import (
    TargetFactory,
)


@pytest.fixture(scope="module")
def toy_targets() -> Iterator[TargetFactory]:
    factory = TargetFactory()
    yield factory
    factory.stop_all()
