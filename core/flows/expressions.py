"""``{{ path.to.value }}`` and ``{{ path or "fallback" }}`` over a plain context mapping.

Deliberately tiny: no calls, no attribute access on objects, nothing a flow author could use
to reach outside the values they were given.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Mapping

__all__ = ["render", "references", "normalise_words", "MissingValue"]

_EXPR = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_OR = re.compile(r'\s+or\s+(?=(?:[^"]*"[^"]*")*[^"]*$)')  # " or " outside quoted literals
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
    for term in (t.strip() for t in _OR.split(expr)):
        match = _TERM.match(term)
        if match is None:
            raise ValueError(f"not an expression: {{{{ {expr} }}}}")
        if match["lit"] is not None:
            return match["lit"]
        value = _lookup(match["path"], context)
        if value not in (None, ""):
            return str(value)
    raise MissingValue(f"no value for {{{{ {expr} }}}}")


def _check_braces(template: str) -> None:
    if _EXPR.sub("", template).count("{{") or _EXPR.sub("", template).count("}}"):
        raise ValueError(f"unbalanced '{{{{' or '}}}}' in {template!r}")


def render(template: str, context: Mapping[str, Any]) -> str:
    _check_braces(template)
    return _EXPR.sub(lambda m: _evaluate(m.group(1), context), template)


def normalise_words(text: str) -> str:
    """Case, accents and punctuation folded away: how replies and keywords are compared."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return " ".join(re.sub(r"[^a-z0-9 ]+", " ", folded).split())


def references(template: str) -> list[str]:
    """The expressions in ``template``; raises ValueError for a malformed one (validation)."""
    _check_braces(template)
    found = []
    for match in _EXPR.finditer(template):
        for term in (t.strip() for t in _OR.split(match.group(1))):
            if not _TERM.match(term):
                raise ValueError(f"not an expression: {{{{ {match.group(1)} }}}}")
        found.append(match.group(1))
    return found
