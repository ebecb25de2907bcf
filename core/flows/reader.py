"""``Reader``: the flow reader's validation helpers. It knows the flow's source, so every error it
raises names the source and the place (step and field) of the problem."""

from __future__ import annotations

from typing import Any, Mapping

from core.errors import FlowDefinitionError
from core.flows.expressions import references
from core.flows.model import parse_duration

__all__ = ["Reader"]


def _kind(value: Any) -> str:
    """What a YAML value is, in words a flow author knows."""
    kinds = {bool: "yes/no", str: "text", int: "a number", float: "a number", list: "a list"}
    return next((f"{k} {value!r}" if k == "text" else k for t, k in kinds.items() if isinstance(value, t)),
                type(value).__name__)


class Reader:
    """Validation helpers that know where they are, so every error names its place."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> FlowDefinitionError:
        return FlowDefinitionError(f"{self.source}: {where}: {message}")

    def mapping(self, value: Any, where: str) -> Mapping[str, Any]:
        if value is None:
            raise self.fail(where, "missing (expected 'key: value' lines indented under it)")
        if not isinstance(value, Mapping):
            raise self.fail(where, f"expected 'key: value' lines, got {_kind(value)}")
        return value

    def keys(self, value: Mapping[str, Any], allowed: set[str], where: str) -> None:
        unknown = [str(k) for k in value if k not in allowed]
        if unknown:
            raise self.fail(where, f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")

    def target(self, body: Mapping[str, Any], key: str, where: str, default: str | None) -> str | None:
        """A step id to go to: absent → default; present → must be a non-empty string."""
        if key not in body:
            return default
        value = body[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{where}.{key}", "expected the id of a step (or 'end')")
        return value

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, "expected a non-empty string")
        try:
            references(value)
        except ValueError as exc:
            raise self.fail(where, str(exc)) from None
        return value

    def duration(self, value: Any, where: str) -> str:
        text = self.text(str(value) if isinstance(value, (int, float)) else value, where)
        if "{{" not in text:
            try:
                parse_duration(text)
            except ValueError as exc:
                raise self.fail(where, str(exc)) from None
        return text

