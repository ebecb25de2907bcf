"""One person, one contact: resolve platform references and WhatsApp ids to a Contact.

Every identifying key (phone match keys, wa_id, business-scoped user id, platform ids) is a
``ContactLink`` row with a unique constraint, so two workers resolving the same person at once
cannot create two contacts: the loser of the race re-reads the winner's contact.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import phones
from core.errors import PhoneError
from core.events import ContactRef
from core.store.models import Contact, ContactLink

__all__ = ["Resolved", "resolve_ref", "find_ref", "resolve_whatsapp", "keys_for_phone"]

_log = logging.getLogger(__name__)


class Resolved:
    """A resolved contact (or None when the reference had nothing to reach them by)."""

    def __init__(self, contact: Contact | None, problems: list[str]) -> None:
        self.contact = contact
        self.problems = problems


def keys_for_phone(e164: str) -> list[tuple[str, str]]:
    return [("phone", key) for key in sorted(phones.match_keys(e164))]


def _find(s: Session, workspace_id: int, keys: list[tuple[str, str]]) -> Contact | None:
    for platform, external_id in keys:
        link = s.scalar(
            select(ContactLink).where(
                ContactLink.workspace_id == workspace_id,
                ContactLink.platform == platform,
                ContactLink.external_id == external_id,
            )
        )
        if link is not None:
            return s.get(Contact, link.contact_id)
    return None


def _link(s: Session, contact: Contact, keys: list[tuple[str, str]]) -> None:
    for platform, external_id in keys:
        exists = s.scalar(
            select(ContactLink.id).where(
                ContactLink.workspace_id == contact.workspace_id,
                ContactLink.platform == platform,
                ContactLink.external_id == external_id,
            )
        )
        if exists is None:
            s.add(ContactLink(workspace_id=contact.workspace_id, contact_id=contact.id,
                              platform=platform, external_id=external_id))
    s.flush()


def _find_or_create(s: Session, workspace_id: int, keys: list[tuple[str, str]], now: datetime, **fields) -> Contact:
    contact = _find(s, workspace_id, keys)
    if contact is not None:
        _link(s, contact, keys)
        return contact
    try:
        with s.begin_nested():
            contact = Contact(workspace_id=workspace_id, created_at=now, updated_at=now, **fields)
            s.add(contact)
            s.flush()
            _link(s, contact, keys)
        return contact
    except IntegrityError:  # another worker created this person a moment ago
        contact = _find(s, workspace_id, keys)
        if contact is None:
            raise
        _link(s, contact, keys)
        return contact


def _fill(contact: Contact, now: datetime, **fields) -> None:
    """Fill in what the contact lacks; never overwrite what it already has."""
    changed = False
    for name, value in fields.items():
        if value and not getattr(contact, name):
            setattr(contact, name, value)
            changed = True
    if changed:
        contact.updated_at = now


def resolve_ref(s: Session, workspace_id: int, ref: ContactRef, now: datetime) -> Resolved:
    phone, problems = phones.pick_best(ref.phones)
    if phone is None and not ref.phones:
        problems = ["no phone number in the event (it may have been withheld by the platform)"]
    keys = []
    if ref.external_id:
        keys.append((ref.platform, ref.external_id))
    if phone is not None:
        keys.extend(keys_for_phone(phone.e164))
        if phone.warning:
            _log.debug("phone accepted with a warning: %s", phone.warning)
    if phone is None:
        return Resolved(_find(s, workspace_id, keys) if keys else None, problems)
    fields = dict(phone_e164=phone.e164, first_name=ref.first_name, last_name=ref.last_name,
                  email=ref.email, locale=ref.locale, timezone=phones.country_timezone(phone.e164))
    contact = _find_or_create(s, workspace_id, keys, now, **fields)
    _fill(contact, now, **fields)
    return Resolved(contact, problems)


def find_ref(s: Session, workspace_id: int, ref: ContactRef) -> Contact | None:
    """The contact a reference names (platform id, or phone), without creating or linking anyone."""
    phone, _ = phones.pick_best(ref.phones)
    keys = [(ref.platform, ref.external_id)] if ref.external_id else []
    if phone is not None:
        keys.extend(keys_for_phone(phone.e164))
    return _find(s, workspace_id, keys) if keys else None


def resolve_whatsapp(
    s: Session,
    workspace_id: int,
    *,
    wa_id: str | None,
    user_id: str | None,
    profile_name: str | None,
    now: datetime,
) -> Contact:
    keys: list[tuple[str, str]] = []
    e164 = None
    if wa_id:
        keys.append(("whatsapp", wa_id))
        try:
            e164 = phones.from_wa_id(wa_id)
            keys.extend(keys_for_phone(e164))
        except PhoneError as exc:  # an odd id still names one user; we just cannot match it to a phone
            _log.warning("WhatsApp id that is not a phone number: %s", exc)
    if user_id:
        keys.append(("bsuid", user_id))
    if not keys:
        raise ValueError("a WhatsApp user needs a wa_id or a user id")
    fields = dict(wa_id=wa_id, user_id=user_id, profile_name=profile_name, phone_e164=e164,
                  timezone=phones.country_timezone(e164) if e164 else None)
    contact = _find_or_create(s, workspace_id, keys, now, **fields)
    _fill(contact, now, **fields)
    return contact
