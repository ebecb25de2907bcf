"""The rules Meta enforces on a template: lengths, variables, buttons and examples.
``validate_template`` raises ``TemplateError`` at the first broken rule; the single checks are
public so ``core.template_files`` can run them one by one and report every rule a file breaks.
"""

from __future__ import annotations

import re
from collections import Counter

from core.template_model import VARIABLE as _VAR, template_error as _fail
from core.template_model import Button, ButtonKind, ParameterFormat, Template

__all__ = [
    "BODY_LIMIT", "HEADER_LIMIT", "FOOTER_LIMIT", "LABEL_LIMIT", "PARAM_LIMIT", "NAME_PATTERN", "LANGUAGE_PATTERN",
    "validate_template", "check_length", "check_variables", "check_buttons", "check_examples", "check_value",
]

BODY_LIMIT = 1024
HEADER_LIMIT = FOOTER_LIMIT = 60
LABEL_LIMIT = 25
PARAM_LIMIT = 1024
_NAMED = re.compile(r"[a-z_][a-z0-9_]*\Z")
NAME_PATTERN = re.compile(r"[a-z0-9_]+\Z")
LANGUAGE_PATTERN = re.compile(r"[a-z]{2,3}(_[A-Za-z0-9]{2,4})?\Z")

_BUTTON_LIMITS = {ButtonKind.QUICK_REPLY: 10, ButtonKind.URL: 2, ButtonKind.PHONE_NUMBER: 1, ButtonKind.COPY_CODE: 1}
_BUTTON_FIELDS = {"payload": ButtonKind.QUICK_REPLY, "url": ButtonKind.URL, "phone_number": ButtonKind.PHONE_NUMBER}


def validate_template(t: Template) -> None:
    """Raise ``TemplateError`` naming the field when ``t`` breaks a WhatsApp rule."""
    if not NAME_PATTERN.match(t.name) or len(t.name) > 512:
        raise _fail(t, "name must be 1-512 lowercase letters, digits or underscores")
    if not LANGUAGE_PATTERN.match(t.language):
        raise _fail(t, f"language {t.language!r} is not a WhatsApp language code like en_US")
    check_length(t, "header_text", t.header_text, HEADER_LIMIT)
    check_length(t, "body", t.body, BODY_LIMIT)
    check_length(t, "footer", t.footer, FOOTER_LIMIT)
    check_variables(t)
    check_buttons(t)
    check_examples(t)


def check_length(t: Template, name: str, text: str | None, limit: int) -> None:
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


def check_variables(t: Template) -> None:
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


def check_buttons(t: Template) -> None:
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


def check_examples(t: Template) -> None:
    wanted = t.all_params
    missing = [k for k in wanted if k not in t.examples]
    if missing:
        raise _fail(t, f"examples: no example for {', '.join(map(repr, missing))}")
    extra = sorted(str(k) for k in t.examples if k not in wanted)
    if extra:
        raise _fail(t, f"examples: {', '.join(map(repr, extra))} is not a parameter")
    for key in wanted:
        check_value(t, f"examples[{key!r}]", t.examples[key])


def check_value(t: Template, where: str, value: object) -> str:
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
