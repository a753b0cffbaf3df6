"""Fixtures for the registry tests: scratch registrations are always removed again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from activations import list_activations, unregister


@pytest.fixture
def scratch_registry() -> Iterator[None]:
    """Unregister every name a test registers (the built-ins stay untouched)."""
    before = set(list_activations())
    yield
    for name in set(list_activations()) - before:
        unregister(name)
