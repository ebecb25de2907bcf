"""WhatsApp message templates: the catalogue, the rules Meta enforces, and rendering.

Parameter keys. The body's parameters are the variable names (``"first_name"``, or ``"1"``,
``"2"`` ... for positional templates). Named templates share one namespace across components,
so ``{{first_name}}`` in the header and the body takes one value. Positional templates number
each component separately, so their header variable is keyed ``"header_1"`` and a URL button's
variable ``"button_<index>"`` (the button's 0-based index, as the send API counts it).
``Template.all_params`` lists every key ``render`` and ``examples`` need.
"""

from __future__ import annotations

import enum
import functools
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

from core.errors import TemplateError

__all__ = [
    "Category", "TemplateStatus", "ParameterFormat", "ButtonKind", "Button", "Template", "Rendered",
    "Catalogue", "load_catalogue", "default_catalogue", "validate_template", "render", "normalise_language",
]

BODY_LIMIT = 1024
HEADER_LIMIT = FOOTER_LIMIT = 60
LABEL_LIMIT = 25
PARAM_LIMIT = 1024
_VAR = re.compile(r"\{\{([^{}]*)\}\}")
_NAMED = re.compile(r"[a-z_][a-z0-9_]*\Z")
_NAME = re.compile(r"[a-z0-9_]+\Z")
_LANGUAGE = re.compile(r"[a-z]{2,3}(_[A-Za-z0-9]{2,4})?\Z")


class _Enum(str, enum.Enum):
    """Case-insensitive lookup; unknown values raise ``ValueError``."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if isinstance(value, str):
            for member in cls:
                if member.value.lower() == value.strip().lower():
                    return member
        return None

    def __str__(self) -> str:
        return self.value


class Category(_Enum):
    MARKETING = "MARKETING"
    UTILITY = "UTILITY"
    AUTHENTICATION = "AUTHENTICATION"


class TemplateStatus(_Enum):
    APPROVED = "APPROVED"
    PENDING = "PENDING"
    REJECTED = "REJECTED"
    PAUSED = "PAUSED"
    DISABLED = "DISABLED"
    FLAGGED = "FLAGGED"
    IN_APPEAL = "IN_APPEAL"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    LOCKED = "LOCKED"
    REINSTATED = "REINSTATED"
    PENDING_DELETION = "PENDING_DELETION"
    DELETED = "DELETED"
    ARCHIVED = "ARCHIVED"
    UNARCHIVED = "UNARCHIVED"


class ParameterFormat(_Enum):
    NAMED = "named"
    POSITIONAL = "positional"


class ButtonKind(_Enum):
    QUICK_REPLY = "quick_reply"
    URL = "url"
    PHONE_NUMBER = "phone_number"
    COPY_CODE = "copy_code"


_BUTTON_LIMITS = {ButtonKind.QUICK_REPLY: 10, ButtonKind.URL: 2, ButtonKind.PHONE_NUMBER: 1, ButtonKind.COPY_CODE: 1}
_BUTTON_FIELDS = {"payload": ButtonKind.QUICK_REPLY, "url": ButtonKind.URL, "phone_number": ButtonKind.PHONE_NUMBER}


@dataclass(frozen=True, slots=True, kw_only=True)
class Button:
    kind: ButtonKind
    text: str  # the label, <= 25 characters
    payload: str | None = None  # quick_reply: our id, sent back when tapped
    url: str | None = None  # url: may end with one variable
    phone_number: str | None = None  # phone_number: the number dialled


@dataclass(frozen=True, slots=True, kw_only=True)
class Template:
    name: str
    language: str  # as Meta spells it: en_US
    category: Category
    status: TemplateStatus
    body: str
    parameter_format: ParameterFormat = ParameterFormat.POSITIONAL
    header_text: str | None = None
    footer: str | None = None
    buttons: tuple[Button, ...] = ()
    examples: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def params(self) -> tuple[str, ...]:
        """Body parameter names in order of first appearance."""
        return tuple(dict.fromkeys(_VAR.findall(self.body)))

    @property
    def header_params(self) -> tuple[str, ...]:
        return tuple(_key(self, "header", v) for v in _VAR.findall(self.header_text or ""))[:1]

    @property
    def button_params(self) -> tuple[str, ...]:
        return tuple(
            _key(self, f"button_{i}", v)
            for i, b in enumerate(self.buttons)
            if b.kind is ButtonKind.URL
            for v in _VAR.findall(b.url or "")[:1]
        )

    @property
    def all_params(self) -> tuple[str, ...]:
        """Every parameter key: header, body, then URL buttons."""
        return tuple(dict.fromkeys(self.header_params + self.params + self.button_params))


@dataclass(frozen=True, slots=True, kw_only=True)
class Rendered:
    """The text a person sees: for transcripts and previews."""

    template: Template
    params: tuple[tuple[str, str], ...]
    header: str | None
    body: str
    footer: str | None
    buttons: tuple[str, ...]

    @property
    def text(self) -> str:
        parts = [p for p in (self.header, self.body, self.footer) if p]
        if self.buttons:
            parts.append(" ".join(f"[{label}]" for label in self.buttons))
        return "\n\n".join(parts)


def _key(t: Template, component: str, var: str) -> str:
    if t.parameter_format is ParameterFormat.NAMED or component == "body":
        return var
    return "header_1" if component == "header" else component


def normalise_language(code: str) -> str:
    """``en-us`` / ``en-US`` / ``en_US`` → ``en_US``."""
    lang, _, region = code.strip().replace("-", "_").partition("_")
    region = region.upper() if len(region) == 2 else region
    return f"{lang.lower()}_{region}" if region else lang.lower()


def _fail(t: Template, message: str) -> TemplateError:
    return TemplateError(f"template {t.name!r}: {message}")


# ---------------------------------------------------------------- validation


def validate_template(t: Template) -> None:
    """Raise ``TemplateError`` naming the field when ``t`` breaks a WhatsApp rule."""
    if not _NAME.match(t.name) or len(t.name) > 512:
        raise _fail(t, "name must be 1-512 lowercase letters, digits or underscores")
    if not _LANGUAGE.match(t.language):
        raise _fail(t, f"language {t.language!r} is not a WhatsApp language code like en_US")
    _check_length(t, "header_text", t.header_text, HEADER_LIMIT)
    _check_length(t, "body", t.body, BODY_LIMIT)
    _check_length(t, "footer", t.footer, FOOTER_LIMIT)
    _check_variables(t)
    _check_buttons(t)
    _check_examples(t)


def _check_length(t: Template, name: str, text: str | None, limit: int) -> None:
    if text is None and name != "body":
        return
    if not (text or "").strip():
        raise _fail(t, f"{name} is empty")
    if len(text) > limit:
        raise _fail(t, f"{name} is {len(text)} characters, the limit is {limit}")
    if "{{" in _VAR.sub("", text) or "}}" in _VAR.sub("", text):
        raise _fail(t, f"{name} has unbalanced braces")
    if re.search(r"\}\}\s*\{\{", text):
        raise _fail(t, f"{name} has adjacent variables; put text between them")


def _check_variables(t: Template) -> None:
    body = t.body.strip()
    if _VAR.match(body) or re.search(r"\{\{[^{}]*\}\}\Z", body):
        raise _fail(t, "body must not start or end with a variable")
    if t.footer and _VAR.search(t.footer):
        raise _fail(t, "footer must not contain variables")
    header = _VAR.findall(t.header_text or "")
    if len(header) > 1:
        raise _fail(t, f"header_text has {len(header)} variables, the limit is 1")
    _check_names(t, "header_text", header)
    _check_names(t, "body", _VAR.findall(t.body))


def _check_names(t: Template, where: str, names: list[str]) -> None:
    if t.parameter_format is ParameterFormat.NAMED:
        for name in names:
            if not _NAMED.match(name):
                raise _fail(t, f"{where} variable {{{{{name}}}}} must be lowercase letters, digits, underscores")
        return
    distinct = list(dict.fromkeys(names))
    if distinct != [str(i) for i in range(1, len(distinct) + 1)]:
        shown = ", ".join(f"{{{{{n}}}}}" for n in distinct)
        raise _fail(t, f"{where} positional variables must be {{{{1}}}}, {{{{2}}}}, ... in order; got {shown}")


def _check_buttons(t: Template) -> None:
    if len(t.buttons) > 10:
        raise _fail(t, f"buttons: {len(t.buttons)} buttons, the limit is 10")
    counts = Counter(b.kind for b in t.buttons)
    for kind, limit in _BUTTON_LIMITS.items():
        if counts[kind] > limit:
            raise _fail(t, f"buttons: {counts[kind]} {kind} buttons, the limit is {limit}")
    quick = [i for i, b in enumerate(t.buttons) if b.kind is ButtonKind.QUICK_REPLY]
    if quick and quick[-1] - quick[0] + 1 != len(quick):
        raise _fail(t, "buttons: quick_reply buttons must be grouped together")
    payloads = [b.payload for b in t.buttons if b.kind is ButtonKind.QUICK_REPLY]
    dupes = sorted({p for p in payloads if p and payloads.count(p) > 1})
    if dupes:
        raise _fail(t, f"buttons: quick_reply payload {dupes[0]!r} is used twice")
    for i, button in enumerate(t.buttons):
        _check_button(t, f"buttons[{i}]", button)


def _check_button(t: Template, where: str, b: Button) -> None:
    if not isinstance(b.kind, ButtonKind):
        raise _fail(t, f"{where}.kind {b.kind!r} is not one of {', '.join(k.value for k in ButtonKind)}")
    if not b.text.strip() or len(b.text) > LABEL_LIMIT:
        raise _fail(t, f"{where}.text {b.text!r} must be 1-{LABEL_LIMIT} characters")
    for name, kind in _BUTTON_FIELDS.items():
        value = getattr(b, name)
        if b.kind is kind and not (value or "").strip():
            raise _fail(t, f"{where}.{name} is required for {kind} buttons")
        if b.kind is not kind and value is not None:
            raise _fail(t, f"{where}.{name} is only for {kind} buttons, not {b.kind}")
    if b.kind is ButtonKind.URL:
        _check_url(t, where, b.url or "")
    if b.kind is ButtonKind.PHONE_NUMBER and not re.fullmatch(r"\+?[0-9]{1,20}", b.phone_number or ""):
        raise _fail(t, f"{where}.phone_number must be at most 20 digits")


def _check_url(t: Template, where: str, url: str) -> None:
    if len(url) > 2000 or not url.startswith(("https://", "http://")):
        raise _fail(t, f"{where}.url must be an http(s) URL of at most 2000 characters")
    names = _VAR.findall(url)
    if len(names) > 1 or (names and not url.endswith("}}")) or "{{" in _VAR.sub("", url):
        raise _fail(t, f"{where}.url may only end with one variable")
    _check_names(t, f"{where}.url", names)


def _check_examples(t: Template) -> None:
    wanted = t.all_params
    missing = [k for k in wanted if k not in t.examples]
    if missing:
        raise _fail(t, f"examples: no example for {', '.join(map(repr, missing))}")
    extra = sorted(str(k) for k in t.examples if k not in wanted)
    if extra:
        raise _fail(t, f"examples: {', '.join(map(repr, extra))} is not a parameter")
    for key in wanted:
        _check_value(t, f"examples[{key!r}]", t.examples[key])


def _check_value(t: Template, where: str, value: object) -> str:
    if value is None:
        raise _fail(t, f"{where} is None")
    text = str(value)
    if not text.strip():
        raise _fail(t, f"{where} is empty")
    if any(c in text for c in "\n\r\t"):
        raise _fail(t, f"{where} contains a newline or tab, which WhatsApp rejects")
    if "     " in text:
        raise _fail(t, f"{where} has more than 4 consecutive spaces, which WhatsApp rejects")
    if len(text) > PARAM_LIMIT:
        raise _fail(t, f"{where} is {len(text)} characters, the limit is {PARAM_LIMIT}")
    return text


# ---------------------------------------------------------------- rendering


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


# ---------------------------------------------------------------- the catalogue


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
    return Catalogue(templates=tuple(_template(origin, i, item) for i, item in enumerate(data or ())))


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


def _template(origin: str, index: int, item: object) -> Template:
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
        buttons=tuple(_button(f"{where}: buttons[{i}]", b) for i, b in enumerate(item.get("buttons") or ())),
        examples={str(k): None if v is None else str(v) for k, v in examples.items()},
    )


def _button(where: str, item: object) -> Button:
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


def _enum(cls: type[_Enum], value: object, where: str, name: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise TemplateError(f"{where}: {name} {value!r} is not one of {allowed}") from None


def _text(value: object) -> str | None:
    return None if value is None else str(value).strip()
