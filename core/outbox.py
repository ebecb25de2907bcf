"""The outbox: every outbound message becomes a row here, after the policy gate, before the API.

The row is the record of what was meant to be sent and what happened; the bridge's sender
picks up ``queued`` rows, asks the gate once more, and calls the Cloud API.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import consent as consent_rules
from core.commands import Send, SendList, SendTemplate
from core.conversations import window_of
from core.errors import TemplateError
from core.events import ConsentSignal
from core.gate import Decision, Outgoing, Policy, Verdict, decide
from core.store.models import ConsentEvent, Contact, Conversation, Message
from core.languages import choose_language
from core.template_status import category_of, status_of
from core.templates import Catalogue, Rendered, render

__all__ = ["consent_of", "record_consent", "check_for", "queue", "recheck", "outgoing_for", "marketing_sent",
           "resolve_language", "decide_with", "new_row", "row_values", "stored_for", "COUNTED"]


def consent_of(s: Session, contact_id: int) -> consent_rules.ConsentState:
    rows = s.scalars(select(ConsentEvent).where(ConsentEvent.contact_id == contact_id)).all()
    return consent_rules.derive(rows)


def record_consent(s: Session, contact: Contact, signal: ConsentSignal, now: datetime) -> bool:
    """Append to the ledger; the same statement from the same source at the same time is kept once.
    A statement dated in the future counts from the time we learn it (it must not outrank a later STOP)."""
    if signal.at > now:
        signal = replace(signal, at=now)
    same = s.scalar(select(ConsentEvent.id).where(
        ConsentEvent.contact_id == contact.id, ConsentEvent.purpose == signal.purpose.value,
        ConsentEvent.action == signal.action.value, ConsentEvent.source == signal.source,
        ConsentEvent.at == signal.at))
    if same is not None:
        return False
    s.add(ConsentEvent(workspace_id=contact.workspace_id, contact_id=contact.id, purpose=signal.purpose.value,
                       action=signal.action.value, source=signal.source, evidence=signal.evidence,
                       at=signal.at, recorded_at=now))
    s.flush()
    return True


def resolve_language(contact: Contact, command: Send, catalogue: Catalogue, policy: Policy) -> Send:
    """A template send without a language gets the contact's (locale, else phone country, else the
    workspace's ``template_languages`` order, else the template's first language)."""
    if not isinstance(command, SendTemplate) or command.language:
        return command
    available = [t.language for t in catalogue.templates if t.name == command.template]
    language = choose_language(available, locale=contact.locale, phone=contact.phone_e164,
                               fallback=policy.template_languages)
    return replace(command, language=language) if language else command


Stored = Callable[[str, str], tuple[str | None, str | None]]


def stored_for(s: Session, workspace_id: int) -> Stored:
    return lambda name, language: (status_of(s, workspace_id, name, language),
                                   category_of(s, workspace_id, name, language))


def outgoing_for(command: Send, catalogue: Catalogue, stored: Stored | None = None) -> Outgoing:
    """``stored``: the (status, category) WhatsApp reported (template table); each wins over the
    catalogue's, so a utility template Meta re-categorised as MARKETING needs marketing consent."""
    if isinstance(command, SendTemplate):
        template = catalogue.get(command.template, command.language)
        status, category = stored(template.name, template.language) if stored else (None, None)
        return Outgoing(template_category=category or template.category.value,
                        template_status=status or template.status.value)
    return Outgoing(compliance=getattr(command, "compliance", False))


COUNTED = _COUNTED = ("queued", "sending", "unknown", "accepted", "sent", "delivered", "read", "played")


def marketing_sent(s: Session, contact_id: int, since: datetime, *, exclude: int | None = None) -> tuple[datetime, ...]:
    """When marketing templates went, may have gone, or are about to go to the contact since ``since``:
    the frequency cap's input (``exclude``: the row being re-checked, so it does not count itself)."""
    query = select(Message.created_at).where(
        Message.contact_id == contact_id, Message.direction == "out", Message.template_category == "MARKETING",
        Message.status.in_(_COUNTED), Message.created_at > since)
    if exclude is not None:
        query = query.where(Message.id != exclude)
    return tuple(s.scalars(query))


def _decide(s: Session, contact: Contact, conv: Conversation, outgoing: Outgoing, now: datetime,
            policy: Policy, exclude: int | None = None) -> Decision:
    sent = (marketing_sent(s, contact.id, now - policy.cap_window, exclude=exclude)
            if outgoing.template_category == "MARKETING" else ())
    return decide_with(contact, conv, outgoing, now, policy, consent=consent_of(s, contact.id), sent=sent)


def decide_with(contact: Contact, conv: Conversation, outgoing: Outgoing, now: datetime, policy: Policy, *,
                consent: consent_rules.ConsentState, sent: tuple[datetime, ...]) -> Decision:
    """The gate, given what ``_decide`` would read: the contact's consent and the marketing sent to
    them within the cap window (a caller deciding many rows at once reads those for all in one go)."""
    return decide(outgoing, consent=consent, session=window_of(conv), now=now,
                  deliverability=contact.deliverability, timezone_name=contact.timezone, marketing_sent=sent,
                  marketing_retry_after=contact.marketing_retry_after, policy=policy)


def check_for(s: Session, contact: Contact, conv: Conversation, catalogue: Catalogue, now: datetime,
              policy: Policy = Policy()):
    """The gate bound to one contact: ``check(command) -> Decision`` for the flow engine."""

    def check(command: Send) -> Decision:
        try:
            outgoing = outgoing_for(resolve_language(contact, command, catalogue, policy), catalogue,
                                    stored_for(s, contact.workspace_id))
        except TemplateError as exc:
            return Decision(verdict=Verdict.BLOCKED, reason=str(exc), template_problem=True)
        return _decide(s, contact, conv, outgoing, now, policy)

    return check


def _request(command: Send, catalogue: Catalogue,
             rendered: Rendered | None = None) -> tuple[dict, str, str | None, str | None]:
    """(stored request, transcript text, template name, category); ``rendered``: the template
    already filled with ``command.params`` (a campaign renders each row once)."""
    if isinstance(command, SendTemplate):
        template = rendered.template if rendered is not None else catalogue.get(command.template, command.language)
        rendered = rendered if rendered is not None else render(template, command.params)
        text = "\n".join(p for p in (rendered.header, rendered.body, rendered.footer) if p)
        request = {"template": template.name, "language": template.language, "params": dict(rendered.params),
                   "buttons": [[b.payload, b.text] for b in template.buttons if b.payload]}
        return request, text, template.name, template.category.value
    if isinstance(command, SendList):
        rows = [row for _title, section_rows in command.sections for row in section_rows]
        request = {"list": {"text": command.text, "button": command.button,
                            "sections": [{"title": t, "rows": [{"id": i, "title": rt, "description": d}
                                                               for i, rt, d in rs]} for t, rs in command.sections]}}
        return request, command.text + "\n" + "\n".join(f"• {title}" for _id, title, _d in rows), None, None
    request = {"text": command.text, "buttons": [list(b) for b in command.buttons]}
    if command.compliance:
        request["compliance"] = True
    return request, command.text, None, None


def queue(
    s: Session,
    *,
    contact: Contact,
    conv: Conversation,
    command: Send,
    author: str,
    catalogue: Catalogue,
    now: datetime,
    key: str | None = None,
    run_id: int | None = None,
    policy: Policy = Policy(),
) -> tuple[Message, Decision]:
    """Write the outbox row: ``queued`` when the gate allows it, ``blocked`` (with the reason) if not.
    With ``key``, a second call with the same key returns the first row instead of a new one."""
    if key is not None:
        existing = s.scalar(select(Message).where(Message.idempotency_key == key))
        if existing is not None:
            return existing, Decision(verdict=Verdict.ALLOWED, reason="already queued")
    command = resolve_language(contact, command, catalogue, policy)
    decision = check_for(s, contact, conv, catalogue, now, policy)(command)
    row, decision = new_row(contact=contact, conv=conv, command=command, author=author, catalogue=catalogue,
                            now=now, key=key, run_id=run_id, decision=decision)
    s.add(row)
    s.flush()
    return row, decision


def new_row(*, contact: Contact, conv: Conversation, command: Send, author: str, catalogue: Catalogue,
            now: datetime, key: str | None, decision: Decision, run_id: int | None = None) -> tuple[Message, Decision]:
    """The outbox row for ``command`` as the gate decided (not added to the session)."""
    values, decision = row_values(contact_id=contact.id, conv=conv, command=command, author=author,
                                  catalogue=catalogue, now=now, key=key, decision=decision, run_id=run_id)
    return Message(**values), decision


def row_values(*, contact_id: int, conv: Conversation, command: Send, author: str, catalogue: Catalogue,
               now: datetime, key: str | None, decision: Decision, run_id: int | None = None,
               rendered: Rendered | None = None) -> tuple[dict, Decision]:
    """``new_row``'s columns as a dict (for inserting many rows at once, ``core.store.inserts``)."""
    try:
        request, text, template, category = _request(command, catalogue, rendered)
    except TemplateError as exc:
        request, text, template, category = {"error": str(exc)}, "", getattr(command, "template", None), None
        decision = Decision(verdict=Verdict.BLOCKED, reason=str(exc))
    deferred = decision.verdict is Verdict.DEFERRED and decision.until is not None
    status = "queued" if decision.allowed or deferred else "blocked"
    return dict(workspace_id=conv.workspace_id, conversation_id=conv.id, contact_id=contact_id,
                direction="out", author=author, kind="template" if template else "text", body=text,
                template_name=template, template_category=category, request=request,
                idempotency_key=key, status=status, status_at=now, flow_run_id=run_id, created_at=now,
                flow_step=getattr(command, "step", None),
                error_details=None if decision.allowed else decision.reason,
                not_before=decision.until if deferred else None), decision


def recheck(s: Session, msg: Message, catalogue: Catalogue, now: datetime, policy: Policy = Policy()) -> Decision:
    """Ask the gate again just before the API call: consent or the window may have changed."""
    contact = s.get(Contact, msg.contact_id)
    conv = s.get(Conversation, msg.conversation_id)
    if msg.template_name:
        outgoing = outgoing_for(SendTemplate(template=msg.template_name, language=msg.request.get("language")),
                                catalogue, stored_for(s, msg.workspace_id))
    else:
        outgoing = Outgoing(compliance=bool((msg.request or {}).get("compliance")))
    return _decide(s, contact, conv, outgoing, now, policy, exclude=msg.id)
