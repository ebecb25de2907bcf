"""The gate asked again for a whole batch of claimed outbox rows, its facts read in a few queries.

``core.outbox.recheck`` reads, for one row, its contact, conversation, consent ledger, the
marketing the contact got within the cap window and the template's stored status: five queries
a row. ``BatchRecheck`` reads the same facts for every row of a batch at once and decides each
row with the same function (``core.outbox.decide_with``), so a batch of 200 costs a handful of
round trips instead of a thousand.

The cap counts what ``recheck`` would count: every row of the batch but the one decided (they
are ``sending`` now), and not a row this batch has already blocked (``forget`` it).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Callable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import consent as consent_rules
from core.commands import SendTemplate
from core.gate import Decision, Outgoing, Policy
from core.outbox import COUNTED, decide_with, outgoing_for
from core.store.models import ConsentEvent, Contact, Conversation, Message
from core.template_status import UNKNOWN, stored_templates
from core.templates import Catalogue, normalise_language

__all__ = ["BatchRecheck"]


class BatchRecheck:
    """``decide(msg)`` for rows of ``msgs``: what ``core.outbox.recheck`` would answer for each."""

    def __init__(self, s: Session, msgs: Sequence[Message], catalogue: Catalogue, now: datetime,
                 policy_of: Callable[[int], Policy]) -> None:
        self.catalogue, self.now, self.policy_of = catalogue, now, policy_of
        contact_ids = sorted({m.contact_id for m in msgs})
        self.contacts = {c.id: c for c in s.scalars(select(Contact).where(Contact.id.in_(contact_ids)))}
        self.convs = {c.id: c for c in s.scalars(select(Conversation).where(
            Conversation.id.in_(sorted({m.conversation_id for m in msgs}))))}
        self.ledgers: dict[int, list[ConsentEvent]] = defaultdict(list)
        for event in s.scalars(select(ConsentEvent).where(ConsentEvent.contact_id.in_(contact_ids))
                               .order_by(ConsentEvent.id)):
            self.ledgers[event.contact_id].append(event)
        workspaces = sorted({m.workspace_id for m in msgs})
        self.stored = {(w, r.name, r.language): (None if r.status == UNKNOWN else r.status,
                                                 None if r.category in (UNKNOWN, "") else r.category)
                       for w in workspaces for r in stored_templates(s, w)}
        since = min(now - policy_of(w).cap_window for w in workspaces) if workspaces else now
        # the category the gate is told (the stored one wins: Meta may have re-categorised the template)
        self.outgoing = {m.id: self._outgoing(m) for m in msgs}
        self.sent: dict[int, dict[int, datetime]] = defaultdict(dict)  # contact -> message id -> created_at
        if any(o.template_category == "MARKETING" for o in self.outgoing.values()):
            for contact_id, message_id, created in s.execute(select(
                    Message.contact_id, Message.id, Message.created_at).where(
                    Message.contact_id.in_(contact_ids), Message.direction == "out",
                    Message.template_category == "MARKETING", Message.status.in_(COUNTED),
                    Message.created_at > since)):
                self.sent[contact_id][message_id] = created

    def _outgoing(self, msg: Message) -> Outgoing:
        if not msg.template_name:
            return Outgoing(compliance=bool((msg.request or {}).get("compliance")))
        command = SendTemplate(template=msg.template_name, language=msg.request.get("language"))

        def stored(name: str, language: str) -> tuple[str | None, str | None]:
            return self.stored.get((msg.workspace_id, name, normalise_language(language)), (None, None))

        return outgoing_for(command, self.catalogue, stored)

    def decide(self, msg: Message) -> Decision:
        policy = self.policy_of(msg.workspace_id)
        outgoing = self.outgoing.get(msg.id) or self._outgoing(msg)
        since = self.now - policy.cap_window
        sent = tuple(created for mid, created in self.sent.get(msg.contact_id, {}).items()
                     if mid != msg.id and created > since) if outgoing.template_category == "MARKETING" else ()
        contact = self.contacts[msg.contact_id]
        consent = consent_rules.derive(self.ledgers.get(msg.contact_id, ()))
        return decide_with(contact, self.convs.get(msg.conversation_id), outgoing, self.now, policy,
                           consent=consent, sent=sent)

    def forget(self, msg: Message) -> None:
        """``msg`` no longer counts toward its contact's cap (the batch blocked it)."""
        self.sent.get(msg.contact_id, {}).pop(msg.id, None)
