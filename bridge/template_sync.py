"""Submit templates to the WhatsApp Business account and pull their status back.

``submit_templates`` creates each language not yet on the account (a language already submitted
and not rejected is left alone) and stores WhatsApp's answer; ``sync_templates`` stores what the
account's listing says. The template webhooks keep the same rows up to date in between.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from connectors.whatsapp.errors import WhatsAppApiError
from connectors.whatsapp.templates import create_body, remote_templates
from core.store import session_scope
from core.store.models import Channel, TemplateRecord
from core.template_status import apply_remote, record_submission
from core.templates import Template
from bridge.runtime import Runtime

__all__ = ["Submitted", "submit_templates", "sync_templates", "workspace_of_account"]


@dataclass(frozen=True, slots=True)
class Submitted:
    name: str
    language: str
    outcome: str  # "submitted (PENDING)", "already submitted (APPROVED)", "failed: ..."


def workspace_of_account(s, waba_id: str) -> int | None:
    return s.scalar(select(Channel.workspace_id).where(Channel.waba_id == waba_id).order_by(Channel.id))


def submit_templates(rt: Runtime, templates: list[Template]) -> list[Submitted]:
    waba = rt.settings.whatsapp_waba_id
    out = []
    for t in templates:
        with session_scope(rt.db) as s:
            ws = workspace_of_account(s, waba)
            row = s.scalar(select(TemplateRecord).where(TemplateRecord.workspace_id == ws, TemplateRecord.name == t.name,
                                                        TemplateRecord.language == t.language))
            if row is not None and row.remote_id and row.status != "REJECTED":
                out.append(Submitted(t.name, t.language, f"already submitted ({row.status})"))
                continue
            rejected_id = row.remote_id if row is not None and row.status == "REJECTED" else None
        body = create_body(t)
        try:
            if rejected_id:  # a rejected template is edited, not created again (its name is taken)
                rt.whatsapp.edit_template(rejected_id, {"components": body["components"]})
                answer = {"id": rejected_id, "status": "PENDING"}
            else:
                answer = rt.whatsapp.create_template(waba, body)
        except WhatsAppApiError as exc:
            out.append(Submitted(t.name, t.language, f"failed: ({exc.code}) {exc.title}: {exc.details}"))
            continue
        with session_scope(rt.db) as s:
            record_submission(s, workspace_of_account(s, waba), t, remote_id=str(answer["id"]),
                              status=str(answer.get("status") or "PENDING"), components=body, now=rt.clock.now())
        verb = "resubmitted" if rejected_id else "submitted"
        out.append(Submitted(t.name, t.language, f"{verb} ({str(answer.get('status') or 'PENDING').upper()})"))
    return out


def sync_templates(rt: Runtime) -> list[str]:
    """Store the account's listing; the lines say what changed."""
    waba = rt.settings.whatsapp_waba_id
    listing = remote_templates(rt.whatsapp.list_templates(waba))
    changes = []
    with session_scope(rt.db) as s:
        ws = workspace_of_account(s, waba)
        for remote in listing:
            change = apply_remote(s, ws, remote, rt.clock.now())
            if change:
                changes.append(change)
    return changes
