"""What the gate needs for a whole batch of segment rows, read in a handful of queries.

Deciding a row one query at a time (find the contact by each phone key, its conversation, its
consent ledger, the marketing it got lately, whether the key is already in the outbox) costs
about a dozen round trips per row. ``read_known`` reads the same facts for every row of a batch
at once; ``core.campaigns`` then decides each row from them with the same rules
(``core.outbox.decide_with``) and falls back to the row-by-row path for anything it does not
hold (a contact seen for the first time, phone keys linked to different contacts).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import consent as consent_rules
from core import phones
from core.store.models import ConsentEvent, Contact, ContactLink, Conversation, ErasedContact, Message

__all__ = ["Known", "read_known"]


@dataclass(slots=True)
class Known:
    existing_keys: set[str]  # idempotency keys already in the outbox
    erased_possible: bool  # some contact of the workspace was erased: ask privacy row by row
    contact_of: dict[str, int]  # phone match key -> contact id
    contacts: dict[int, Contact]
    convs: dict[int, Conversation]  # contact id -> its conversation on the campaign's channel
    ledgers: dict[int, list[ConsentEvent]]
    sent: dict[int, list[datetime]] = field(default_factory=dict)  # contact id -> marketing created_at

    def contact(self, e164: str) -> Contact | None:
        """The contact every match key of ``e164`` is linked to; None when unknown or ambiguous."""
        ids = {self.contact_of.get(k) for k in phones.match_keys(e164)}
        return self.contacts.get(ids.pop()) if len(ids) == 1 else None

    def consent(self, contact_id: int) -> consent_rules.ConsentState:
        return consent_rules.derive(self.ledgers.get(contact_id, ()))


def read_known(s: Session, *, workspace_id: int, channel_id: int, numbers: Iterable[str], keys: Iterable[str],
               since: datetime, marketing: bool, counted: tuple[str, ...]) -> Known:
    keys, numbers = sorted(set(keys)), sorted(set(numbers))
    existing = set(s.scalars(select(Message.idempotency_key).where(Message.idempotency_key.in_(keys)))) if keys else set()
    erased = s.scalar(select(ErasedContact.id).where(ErasedContact.workspace_id == workspace_id).limit(1)) is not None
    match = sorted({k for n in numbers for k in phones.match_keys(n)})
    contact_of = dict(s.execute(select(ContactLink.external_id, ContactLink.contact_id).where(
        ContactLink.workspace_id == workspace_id, ContactLink.platform == "phone",
        ContactLink.external_id.in_(match))).all()) if match else {}
    ids = sorted(set(contact_of.values()))
    contacts = {c.id: c for c in s.scalars(select(Contact).where(Contact.id.in_(ids)))} if ids else {}
    convs = {c.contact_id: c for c in s.scalars(select(Conversation).where(
        Conversation.contact_id.in_(ids), Conversation.channel_id == channel_id))} if ids else {}
    ledgers: dict[int, list[ConsentEvent]] = defaultdict(list)
    for event in (s.scalars(select(ConsentEvent).where(ConsentEvent.contact_id.in_(ids))) if ids else ()):
        ledgers[event.contact_id].append(event)
    sent: dict[int, list[datetime]] = defaultdict(list)
    if marketing and ids:
        for contact_id, created in s.execute(select(Message.contact_id, Message.created_at).where(
                Message.contact_id.in_(ids), Message.direction == "out", Message.template_category == "MARKETING",
                Message.status.in_(counted), Message.created_at > since)):
            sent[contact_id].append(created)
    return Known(existing_keys=existing, erased_possible=erased, contact_of=contact_of, contacts=contacts,
                 convs=convs, ledgers=ledgers, sent=sent)
