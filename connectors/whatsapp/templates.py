"""Templates ↔ the Cloud API's template management shapes: the create body from a core ``Template``,
and a listing's records as core ``RemoteTemplate`` values (``templates/template-management``,
``templates/components``)."""

from __future__ import annotations

from typing import Any, Mapping

from core.template_status import RemoteTemplate
from core.template_model import VARIABLE as _VAR
from core.templates import ButtonKind, ParameterFormat, Template, normalise_language

__all__ = ["create_body", "remote_template", "remote_templates"]


def _examples(t: Template, text: str, component: str) -> dict[str, Any]:
    names = list(dict.fromkeys(_VAR.findall(text)))
    if not names:
        return {}
    if t.parameter_format is ParameterFormat.NAMED:
        key = f"{component}_text_named_params"
        return {"example": {key: [{"param_name": n, "example": t.examples[n]} for n in names]}}
    keys = ["header_1"] if component == "header" else names
    values = [t.examples[k] for k in keys]
    return {"example": {"header_text": values} if component == "header" else {"body_text": [values]}}


def _button(t: Template, index: int, b: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": b.kind.value.upper(), "text": b.text}
    if b.kind is ButtonKind.URL:
        out["url"] = b.url
        names = _VAR.findall(b.url or "")
        if names:
            key = names[0] if t.parameter_format is ParameterFormat.NAMED else f"button_{index}"
            out["example"] = [t.examples[key]]
    elif b.kind is ButtonKind.PHONE_NUMBER:
        out["phone_number"] = b.phone_number
    elif b.kind is ButtonKind.COPY_CODE:
        out = {"type": "COPY_CODE", "example": "CODE123"}  # the code itself is given on each send
    return out


def create_body(t: Template) -> dict[str, Any]:
    """The ``POST /{waba_id}/message_templates`` body for one language of a template."""
    components: list[dict[str, Any]] = []
    if t.header_text:
        components.append({"type": "HEADER", "format": "TEXT", "text": t.header_text,
                           **_examples(t, t.header_text, "header")})
    components.append({"type": "BODY", "text": t.body, **_examples(t, t.body, "body")})
    if t.footer:
        components.append({"type": "FOOTER", "text": t.footer})
    if t.buttons:
        components.append({"type": "BUTTONS", "buttons": [_button(t, i, b) for i, b in enumerate(t.buttons)]})
    return {"name": t.name, "language": t.language, "category": t.category.value,
            "parameter_format": t.parameter_format.value, "components": components}


def remote_template(item: Mapping[str, Any]) -> RemoteTemplate | None:
    """One record of a listing; None when it lacks a name, language or status."""
    name, language, status = item.get("name"), item.get("language"), item.get("status")
    if not (isinstance(name, str) and isinstance(language, str) and isinstance(status, str)):
        return None
    quality = item.get("quality_score")
    score = quality.get("score") if isinstance(quality, Mapping) else None
    reason = item.get("rejected_reason")
    return RemoteTemplate(name=name, language=normalise_language(language), category=str(item.get("category") or ""),
                          status=status.upper(), remote_id=str(item["id"]) if item.get("id") else None,
                          quality=str(score).upper() if score and str(score).upper() != "UNKNOWN" else None,
                          rejected_reason=str(reason) if reason and reason != "NONE" else None)


def remote_templates(items: list[Mapping[str, Any]]) -> list[RemoteTemplate]:
    return [r for r in (remote_template(i) for i in items) if r is not None]
