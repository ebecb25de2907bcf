"""Job functions for tests that need RQ to run something real (importable by a worker by name)."""

from __future__ import annotations

__all__ = ["always_fails"]


def always_fails(*args) -> None:
    raise RuntimeError("boom")
