"""Fast construction of frozen, slotted dataclasses for hot paths (the webhook parser).

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__`` (the class's
own ``__setattr__`` refuses), which costs about 0.15 µs a field: 2-3 µs for a 16-field event,
more than the rest of parsing it. ``builder(cls, fields)`` returns a function taking every
field positionally, in declaration order, that fills an instance of a private mutable twin of ``cls``
(same ``__slots__``, so the same memory layout) with plain attribute stores, then re-labels it
as ``cls``. The result is an ordinary ``cls`` instance: equal to, hashing like and as frozen as
one made by ``cls(...)``; tests/core/test_frozen.py checks that for every event type.

Only for classes where that is exactly what ``__init__`` would do: a frozen dataclass with
``slots=True``, every field in ``__init__``, no ``__post_init__``. Anything else is refused
when the builder is made, not when it is used. The caller spells out the field order it will
pass (``fields``), so a field added to or moved in the class fails at import, not by putting a
value in the wrong field. (Positional, because keyword passing of 16 arguments costs about as
much as the frozen ``__init__`` itself.)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, TypeVar

__all__ = ["builder"]

T = TypeVar("T")


def builder(cls: type[T], fields: str) -> Callable[..., T]:
    """A positional constructor for the frozen slotted dataclass ``cls``: every field, no defaults,
    in the order ``fields`` names them (space-separated), which must be the class's own order."""
    if not dataclasses.is_dataclass(cls) or not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        raise TypeError(f"{cls.__name__} is not a frozen dataclass")
    declared = dataclasses.fields(cls)
    names = tuple(f.name for f in declared)
    if tuple(fields.split()) != names:
        raise TypeError(f"{cls.__name__}'s fields are now: {' '.join(names)}")
    if tuple(cls.__dict__.get("__slots__", ())) != names:
        raise TypeError(f"{cls.__name__} needs slots=True and no slots beyond its fields")
    if any(not f.init for f in declared) or hasattr(cls, "__post_init__") or cls.__bases__ != (object,):
        raise TypeError(f"{cls.__name__}: __init__ does more than set its fields")
    twin = type(f"_{cls.__name__}Twin", (), {"__slots__": names})
    args = ", ".join(names)
    stores = "".join(f"    o.{n} = {n}\n" for n in names)
    source = f"def build({args}):\n    o = twin()\n{stores}    o.__class__ = cls\n    return o\n"
    scope: dict[str, Any] = {"twin": twin, "cls": cls}
    exec(source, scope)  # noqa: S102 - names come from the dataclass's own fields
    build = scope["build"]
    build.__qualname__ = build.__name__ = f"build_{cls.__name__}"
    build.__doc__ = f"{cls.__name__}({', '.join(names)}), all positional."
    return build
