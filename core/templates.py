"""WhatsApp message templates: rendering, and every public name of the template modules.

``render`` fills a template with its parameters (validated, and cached per template: a campaign
renders one template for every row). The rest lives beside it and is importable from here:
``core.template_model`` (what a template is: categories, buttons, ``Template``, ``Rendered``,
parameter keys), ``core.template_rules`` (the rules Meta enforces, ``validate_template``) and
``core.template_catalogue`` (``Catalogue``, ``load_catalogue``, ``default_catalogue``).
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

from core.template_catalogue import Catalogue, default_catalogue, load_catalogue
from core.template_model import VARIABLE as _VAR, param_key as _key, template_error as _fail
from core.template_model import (
    Button, ButtonKind, Category, ParameterFormat, Rendered, Template, TemplateStatus, normalise_language,
)
from core.template_rules import BODY_LIMIT, HEADER_LIMIT, check_value as _check_value, validate_template

__all__ = [
    "Category", "TemplateStatus", "ParameterFormat", "ButtonKind", "Button", "Template", "Rendered",
    "Catalogue", "load_catalogue", "default_catalogue", "validate_template", "render", "normalise_language",
]


@functools.lru_cache(maxsize=256)
def _checked(t: Template) -> tuple[str, ...]:
    """``t`` validated (an invalid one raises, and is not cached), and its ``all_params``: a
    campaign renders one template for every row."""
    validate_template(t)
    return t.all_params


def render(t: Template, params: Mapping[Any, object]) -> Rendered:
    """Fill ``t`` with ``params`` (exactly ``t.all_params``; positional keys may be ints)."""
    try:
        wanted = _checked(t)
    except TypeError:  # unhashable (a hand-made template with a list inside): check it every time
        validate_template(t)
        wanted = t.all_params
    given = {str(k): v for k, v in params.items()}
    missing = [k for k in wanted if k not in given]
    if missing:
        raise _fail(t, f"missing parameters: {', '.join(map(repr, missing))}")
    extra = sorted(k for k in given if k not in wanted)
    if extra:
        raise _fail(t, f"unknown parameters: {', '.join(map(repr, extra))}")
    values = {k: _check_value(t, f"parameter {k!r}", given[k]) for k in wanted}
    header = _fill(t, "header", t.header_text, values)
    body = _fill(t, "body", t.body, values) or ""
    if header is not None and len(header) > HEADER_LIMIT:
        raise _fail(t, f"rendered header is {len(header)} characters, the limit is {HEADER_LIMIT}")
    if len(body) > BODY_LIMIT:
        raise _fail(t, f"rendered body is {len(body)} characters, the limit is {BODY_LIMIT}")
    buttons = tuple(b.text for b in t.buttons)
    return Rendered(template=t, params=tuple(values.items()), header=header, body=body, footer=t.footer, buttons=buttons)


def _fill(t: Template, component: str, text: str | None, values: Mapping[str, str]) -> str | None:
    if text is None:
        return None
    return _VAR.sub(lambda m: values[_key(t, component, m.group(1))], text)
