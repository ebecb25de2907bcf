"""What a WhatsApp message template is: its category, status, parameter format, buttons, the
``Template`` value itself and the ``Rendered`` text a person sees, plus the pieces the rules,
the catalogue and rendering share (the ``{{variable}}`` pattern, parameter keys, language codes,
the error naming a template). ``core.templates`` exports the public names.

Parameter keys. The body's parameters are the variable names (``"first_name"``, or ``"1"``,
``"2"`` ... for positional templates). Named templates share one namespace across components,
so ``{{first_name}}`` in the header and the body takes one value. Positional templates number
each component separately, so their header variable is keyed ``"header_1"`` and a URL button's
variable ``"button_<index>"`` (the button's 0-based index, as the send API counts it).
``Template.all_params`` lists every key ``render`` and ``examples`` need.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from core.errors import TemplateError

__all__ = [
    "Category", "TemplateStatus", "ParameterFormat", "ButtonKind", "Button", "Template", "Rendered",
    "normalise_language", "VARIABLE", "param_key", "template_error",
]

VARIABLE = re.compile(r"\{\{([^{}]*)\}\}")


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
        return tuple(dict.fromkeys(VARIABLE.findall(self.body)))

    @property
    def header_params(self) -> tuple[str, ...]:
        return tuple(param_key(self, "header", v) for v in VARIABLE.findall(self.header_text or ""))[:1]

    @property
    def button_params(self) -> tuple[str, ...]:
        return tuple(
            param_key(self, f"button_{i}", v)
            for i, b in enumerate(self.buttons)
            if b.kind is ButtonKind.URL
            for v in VARIABLE.findall(b.url or "")[:1]
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


def param_key(t: Template, component: str, var: str) -> str:
    if t.parameter_format is ParameterFormat.NAMED or component == "body":
        return var
    return "header_1" if component == "header" else component


def normalise_language(code: str) -> str:
    """``en-us`` / ``en-US`` / ``en_US`` → ``en_US``."""
    lang, _, region = code.strip().replace("-", "_").partition("_")
    region = region.upper() if len(region) == 2 else region
    return f"{lang.lower()}_{region}" if region else lang.lower()


def template_error(t: Template, message: str) -> TemplateError:
    return TemplateError(f"template {t.name!r}: {message}")
