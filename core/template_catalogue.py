"""The template catalogue: validated templates, one per (name, language), loaded from a YAML
list (``core/templates.yaml`` is the one shipped with replyflow). ``read_template`` and
``read_button`` read one entry; ``core.template_files`` uses them for catalogue-shaped files.
"""

from __future__ import annotations

import enum
import functools
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from core.errors import TemplateError
from core.template_model import template_error as _fail
from core.template_model import (
    Button, ButtonKind, Category, ParameterFormat, Template, TemplateStatus, normalise_language,
)
from core.template_rules import validate_template

__all__ = ["Catalogue", "load_catalogue", "default_catalogue", "read_template", "read_button"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Catalogue:
    """Validated templates; one per (name, language)."""

    templates: tuple[Template, ...] = ()

    def __post_init__(self) -> None:
        seen: set[tuple[str, str]] = set()
        for t in self.templates:
            validate_template(t)
            key = (t.name, t.language.lower())
            if key in seen:
                raise _fail(t, f"language {t.language} is defined twice")
            seen.add(key)

    def names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.name for t in self.templates))

    def get(self, name: str, language: str | None = None) -> Template:
        """The template ``name`` in ``language`` (``en-US`` == ``en_US``); the first
        language listed for ``name`` when ``language`` is None."""
        matches = [t for t in self.templates if t.name == name]
        if not matches:
            raise TemplateError(f"template {name!r} is not in the catalogue (the shipped templates and the files "
                                f"in REPLYFLOW_TEMPLATES_DIR; known: {', '.join(self.names()) or 'none'})")
        if language is None:
            return matches[0]
        wanted = normalise_language(language).lower()
        for t in matches:
            if t.language.lower() == wanted:
                return t
        available = ", ".join(t.language for t in matches)
        raise TemplateError(f"template {name!r} has no {language!r} version (available: {available})")


_TEMPLATE_KEYS = {f for f in Template.__dataclass_fields__}
_REQUIRED_KEYS = {"name", "language", "category", "status", "body"}
_BUTTON_KEYS = {f for f in Button.__dataclass_fields__}


def load_catalogue(source: str | os.PathLike[str] | Any) -> Catalogue:
    """Load and validate a YAML list of templates from a path, a resource or YAML text."""
    text, origin = _read(source)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TemplateError(f"{origin}: not valid YAML: {exc}") from exc
    if not isinstance(data, list | None):
        raise TemplateError(f"{origin}: expected a list of templates, got {type(data).__name__}")
    return Catalogue(templates=tuple(read_template(origin, i, item) for i, item in enumerate(data or ())))


@functools.lru_cache(maxsize=1)
def default_catalogue() -> Catalogue:
    """The catalogue shipped with replyflow (``core/templates.yaml``)."""
    return load_catalogue(resources.files("core").joinpath("templates.yaml"))


def _read(source: Any) -> tuple[str, str]:
    if isinstance(source, str) and ("\n" in source or not os.path.isfile(source)):
        if "\n" in source or not source.strip().endswith((".yaml", ".yml")):
            return source, "<text>"
    path = source if hasattr(source, "read_text") else Path(source)
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except OSError as exc:
        raise TemplateError(f"{path}: cannot read the template catalogue: {exc}") from exc


def read_template(origin: str, index: int, item: object) -> Template:
    where = f"{origin}: template #{index + 1}"
    if not isinstance(item, dict):
        raise TemplateError(f"{where} is not a mapping")
    where = f"template {item['name']!r}" if "name" in item else where
    unknown = sorted(set(map(str, item)) - _TEMPLATE_KEYS)
    missing = sorted(_REQUIRED_KEYS - set(item))
    if unknown or missing:
        problem = f"unknown fields {unknown}" if unknown else f"missing fields {missing}"
        raise TemplateError(f"{where}: {problem}")
    examples = item.get("examples") or {}
    if not isinstance(examples, dict):
        raise TemplateError(f"{where}: examples must be a mapping of parameter to example value")
    return Template(
        name=str(item["name"]),
        language=normalise_language(str(item["language"])),
        category=_enum(Category, item["category"], where, "category"),
        status=_enum(TemplateStatus, item["status"], where, "status"),
        parameter_format=_enum(ParameterFormat, item.get("parameter_format", "positional"), where, "parameter_format"),
        header_text=_text(item.get("header_text")),
        body=_text(item["body"]) or "",
        footer=_text(item.get("footer")),
        buttons=tuple(read_button(f"{where}: buttons[{i}]", b) for i, b in enumerate(item.get("buttons") or ())),
        examples={str(k): None if v is None else str(v) for k, v in examples.items()},
    )


def read_button(where: str, item: object) -> Button:
    if not isinstance(item, dict):
        raise TemplateError(f"{where} is not a mapping")
    unknown = sorted(set(map(str, item)) - _BUTTON_KEYS)
    if unknown or "kind" not in item or "text" not in item:
        raise TemplateError(f"{where}: needs kind and text, unknown fields {unknown}")
    return Button(
        kind=_enum(ButtonKind, item["kind"], where, "kind"),
        text=str(item["text"]),
        payload=_text(item.get("payload")),
        url=_text(item.get("url")),
        phone_number=_text(item.get("phone_number")),
    )


def _enum(cls: type[enum.Enum], value: object, where: str, name: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise TemplateError(f"{where}: {name} {value!r} is not one of {allowed}") from None


def _text(value: object) -> str | None:
    return None if value is None else str(value).strip()
