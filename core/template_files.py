"""Template files: one YAML file per template, every language in it, checked against WhatsApp's rules.

A file looks like::

    name: winter_sale
    category: MARKETING
    parameter_format: named          # or positional ({{1}}, {{2}} ...); one format for every language
    languages:
      en_US:
        header: "Winter sale, {{first_name}}"     # text header, <= 60 characters, <= 1 variable
        body: "Hi {{first_name}}, everything is {{discount}} off until Sunday. Enjoy!"
        footer: Reply STOP to opt out
        buttons:
          - {kind: quick_reply, text: Show me, payload: sale_show}
          - {kind: url, text: Open the shop, url: "https://shop.example.com/{{1}}"}
        examples: {first_name: Maria, discount: 20%, button_1: winter}

The shipped catalogue (``core/templates.yaml``, one entry per template *and* language) stays as
it is; ``load_template_file`` turns a file into the same ``core.templates.Template`` values, so the
send path, the sandbox and the flows see one kind of template. ``problems`` lists *every* broken
rule (not just the first), each as ``file: language: component.field: what is wrong``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from core.errors import TemplateError
from core import template_catalogue, template_rules as rules
from core.templates import Catalogue, Category, ParameterFormat, Template, TemplateStatus, normalise_language

__all__ = ["Problem", "TemplateFile", "load_template_file", "problems", "load_folder", "check_paths",
           "merge_catalogues"]

_FILE_KEYS = {"name", "category", "parameter_format", "languages", "status"}
_LANGUAGE_KEYS = {"header", "body", "footer", "buttons", "examples"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    source: str
    language: str | None
    message: str

    def __str__(self) -> str:
        return ": ".join(p for p in (self.source, self.language, self.message) if p)


@dataclass(frozen=True, slots=True, kw_only=True)
class TemplateFile:
    source: str
    name: str
    category: Category
    parameter_format: ParameterFormat
    templates: tuple[Template, ...]  # one per language, in file order


# the checks of core.template_rules, run one by one so a file reports every rule it breaks
_CHECKS: tuple[tuple[str, Callable[[Template], None]], ...] = (
    ("header", lambda t: rules.check_length(t, "header_text", t.header_text, rules.HEADER_LIMIT)),
    ("body", lambda t: rules.check_length(t, "body", t.body, rules.BODY_LIMIT)),
    ("footer", lambda t: rules.check_length(t, "footer", t.footer, rules.FOOTER_LIMIT)),
    ("variables", rules.check_variables),
    ("buttons", rules.check_buttons),
    ("examples", rules.check_examples),
)


def _component_of(message: str) -> str:
    """Name the component the way the file does (``header``, not ``header_text``)."""
    return message.replace("header_text", "header")


def problems(t: Template, source: str = "") -> list[Problem]:
    """Every WhatsApp rule ``t`` breaks, located by file, language and component.field."""
    found: list[Problem] = []
    if not rules.NAME_PATTERN.match(t.name) or len(t.name) > 512:
        found.append(Problem(source=source, language=None,
                             message=f"name {t.name!r}: 1-512 lowercase letters, digits or underscores"))
    if not rules.LANGUAGE_PATTERN.match(t.language):
        found.append(Problem(source=source, language=t.language,
                             message="not a WhatsApp language code like en_US or es"))
    for _label, check in _CHECKS:
        try:
            check(t)
        except TemplateError as exc:
            text = str(exc).split(": ", 1)[-1]  # drop the "template 'x'" prefix: the file says which
            found.append(Problem(source=source, language=t.language, message=_component_of(text)))
    return found


def _fail(source: str, where: str, message: str) -> TemplateError:
    return TemplateError(f"{source}: {where}: {message}" if where else f"{source}: {message}")


def _enum(cls: Any, value: object, source: str, where: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise _fail(source, where, f"{value!r} is not one of {allowed}") from None


def _header(value: Any, source: str, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        fmt = str(value.get("format", "TEXT")).upper()
        if fmt != "TEXT":
            raise _fail(source, where, f"format {fmt}: only TEXT headers are supported in template files")
        value = value.get("text")
    return None if value is None else str(value).strip()


def _language(source: str, code: str, body: Any, name: str, category: Category, fmt: ParameterFormat,
              status: TemplateStatus) -> Template:
    where = f"languages.{code}"
    if not isinstance(body, dict):
        raise _fail(source, where, "expected a mapping with body (and header, footer, buttons, examples)")
    unknown = sorted(set(map(str, body)) - _LANGUAGE_KEYS)
    if unknown:
        raise _fail(source, where, f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_LANGUAGE_KEYS))}")
    if not isinstance(body.get("body"), str):
        raise _fail(source, f"{where}.body", "required: the message text")
    buttons = body.get("buttons") or []
    if not isinstance(buttons, list):
        raise _fail(source, f"{where}.buttons", "expected a list")
    examples = body.get("examples") or {}
    if not isinstance(examples, dict):
        raise _fail(source, f"{where}.examples", "expected a mapping of variable to example value")
    return Template(
        name=name, language=normalise_language(code), category=category, status=status, parameter_format=fmt,
        header_text=_header(body.get("header"), source, f"{where}.header"), body=body["body"].strip(),
        footer=None if body.get("footer") is None else str(body["footer"]).strip(),
        buttons=tuple(template_catalogue.read_button(f"{source}: {where}.buttons[{i}]", b)
                      for i, b in enumerate(buttons)),
        examples={str(k): None if v is None else str(v) for k, v in examples.items()},
    )


def load_template_file(text: str, source: str = "<template>") -> TemplateFile:
    """Parse one template file (structure errors raise ``TemplateError``; rule checks are ``problems``)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _fail(source, "", f"not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise _fail(source, "", "expected a mapping with name, category, languages")
    unknown = sorted(set(map(str, raw)) - _FILE_KEYS)
    if unknown:
        raise _fail(source, "", f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_FILE_KEYS))}")
    if not isinstance(raw.get("name"), str):
        raise _fail(source, "name", "required: lowercase letters, digits and underscores")
    category = _enum(Category, raw.get("category"), source, "category")
    fmt = _enum(ParameterFormat, raw.get("parameter_format", "positional"), source, "parameter_format")
    status = _enum(TemplateStatus, raw.get("status", "PENDING"), source, "status")
    languages = raw.get("languages")
    if not isinstance(languages, dict) or not languages:
        raise _fail(source, "languages", "expected a mapping of language code (en_US, es ...) to its components")
    made = tuple(_language(source, str(code), body, raw["name"], category, fmt, status)
                 for code, body in languages.items())
    seen: set[str] = set()
    for t in made:
        if t.language.lower() in seen:
            raise _fail(source, f"languages.{t.language}", "defined twice")
        seen.add(t.language.lower())
    return TemplateFile(source=source, name=raw["name"], category=category, parameter_format=fmt, templates=made)


def _files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        out.extend(sorted(p.glob("*.y*ml")) if p.is_dir() else [p])
    return out


def _is_catalogue(text: str) -> bool:
    try:
        return isinstance(yaml.safe_load(text), list)
    except yaml.YAMLError:
        return False


def check_paths(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Template], list[Problem]]:
    """Load files and folders (template files, or a catalogue list like core/templates.yaml); every
    template found and every problem, with its place."""
    found: list[Template] = []
    issues: list[Problem] = []
    for path in _files(paths):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            issues.append(Problem(source=str(path), language=None, message=f"cannot read: {exc.strerror}"))
            continue
        except UnicodeDecodeError as exc:
            issues.append(Problem(source=str(path), language=None,
                                  message=f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at {exc.start})"))
            continue
        try:
            if _is_catalogue(text):
                items = yaml.safe_load(text)
                templates = [template_catalogue.read_template(str(path), i, item) for i, item in enumerate(items)]
            else:
                templates = list(load_template_file(text, str(path)).templates)
        except TemplateError as exc:
            issues.append(Problem(source="", language=None, message=str(exc)))
            continue
        for t in templates:
            issues.extend(problems(t, str(path)))
        if not _is_catalogue(text):
            issues.extend(_same_variables(templates, str(path)))
        found.extend(templates)
    keys = [(t.name, t.language.lower()) for t in found]
    for key in sorted({k for k in keys if keys.count(k) > 1}):
        issues.append(Problem(source="", language=key[1], message=f"template {key[0]!r} is defined twice"))
    return found, issues


def _same_variables(templates: list[Template], source: str) -> list[Problem]:
    """A flow sends the same parameters whatever language it picks: every language needs the same ones."""
    if not templates:
        return []
    first = templates[0]
    return [Problem(source=source, language=t.language,
                    message=f"variables {sorted(t.all_params)} differ from {first.language}'s {sorted(first.all_params)}")
            for t in templates[1:] if set(t.all_params) != set(first.all_params)]


def load_folder(folder: str | os.PathLike[str]) -> tuple[Template, ...]:
    """A workspace's template folder; raises ``TemplateError`` listing every problem."""
    found, issues = check_paths([folder])
    if issues:
        raise TemplateError("; ".join(map(str, issues)))
    return tuple(found)


def merge_catalogues(base: Catalogue, extra: Iterable[Template]) -> Catalogue:
    """``base`` plus ``extra``; a (name, language) in ``extra`` replaces the one in ``base``."""
    extra = tuple(extra)
    replaced = {(t.name, t.language.lower()) for t in extra}
    kept = tuple(t for t in base.templates if (t.name, t.language.lower()) not in replaced)
    return Catalogue(templates=kept + extra)
