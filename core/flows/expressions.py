"""``{{ path.to.value }}`` and ``{{ path or "fallback" }}`` over a plain context mapping.

Deliberately tiny: no calls, no attribute access on objects, nothing a flow author could use
to reach outside the values they were given.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

__all__ = ["render", "references", "MissingValue"]

_EXPR = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_TERM = re.compile(r'^(?:(?P<path>[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*)|"(?P<lit>[^"]*)")$')


class MissingValue(LookupError):
    """An expression named a value the context does not hold (and gave no fallback)."""


def _lookup(path: str, context: Mapping[str, Any]) -> Any:
    value: Any = context
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _evaluate(expr: str, context: Mapping[str, Any]) -> str:
    for term in (t.strip() for t in expr.split(" or ")):
        match = _TERM.match(term)
        if match is None:
            raise ValueError(f"not an expression: {{{{ {expr} }}}}")
        if match["lit"] is not None:
            return match["lit"]
        value = _lookup(match["path"], context)
        if value not in (None, ""):
            return str(value)
    raise MissingValue(f"no value for {{{{ {expr} }}}}")


def render(template: str, context: Mapping[str, Any]) -> str:
    return _EXPR.sub(lambda m: _evaluate(m.group(1), context), template)


def references(template: str) -> list[str]:
    """The expressions in ``template``; raises ValueError for a malformed one (validation)."""
    found = []
    for match in _EXPR.finditer(template):
        for term in (t.strip() for t in match.group(1).split(" or ")):
            if not _TERM.match(term):
                raise ValueError(f"not an expression: {{{{ {match.group(1)} }}}}")
        found.append(match.group(1))
    return found
