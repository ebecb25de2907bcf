"""Privacy requests: export everything held about a contact, erase a contact, erase an account.

Erasing keeps the *shape* of the history (message rows with their kind, direction, status and
timestamps; consent entries with purpose, action, source and instant) so metrics still count,
and removes what identifies the person: names, numbers, ids, message bodies, consent evidence,
links, and the raw webhook copies that mention them. What is left of the person is a salted
hash of each phone / WhatsApp key (``ErasedContact``), so that ``was_erased`` can stop a later
platform import from silently subscribing them again.
"""

from __future__ import annotations

__all__ = [
    "REDACTED",
    "find_contact",
    "find_for_request",
    "export_contact",
    "write_export",
    "export_path",
    "erase_contact",
    "erase_keys",
    "was_erased",
    "handle_request",
]

import dataclasses
import hashlib
import json
import logging
import os
import re
import tempfile
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from core import accounts
from core import consent as consent_rules
from core import phones
from core.errors import PhoneError
from core.events import PrivacyRequest
from core.store.models import (
    Base, Cart, Channel, ConsentEvent, Contact, ContactLink, Conversation, ErasedContact, FlowRun, InboundEvent,
    Installation, Message, Workspace,
)

_log = logging.getLogger(__name__)
REDACTED = "[erased]"  # what personal evidence is replaced by where a column cannot be empty
EXPORT_FORMAT = "replyflow.contact-export/1"
_KEY_PLATFORMS = ("phone", "whatsapp", "bsuid")  # the links whose hashes outlive an erasure
_PERSONAL_FIELDS = ("phone_e164", "wa_id", "user_id", "first_name", "last_name", "email", "profile_name")
_DEFAULT_SALT = "replyflow-default-salt"
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


# ---------------------------------------------------------------- finding the contact


def find_contact(s: Session, workspace_id: int, phone: str, country: str | None = None) -> Contact | None:
    """The contact linked to any match key of ``phone``. Raises ``PhoneError`` for input that
    is not a phone number (the message says why, without the digits)."""
    keys = phones.match_keys(phones.normalize(phone, country).e164)
    link = s.scalar(select(ContactLink).where(
        ContactLink.workspace_id == workspace_id, ContactLink.platform == "phone",
        ContactLink.external_id.in_(sorted(keys))).order_by(ContactLink.id))
    return None if link is None else s.get(Contact, link.contact_id)


def _by_link(s: Session, workspace_id: int, platform: str, external_id: str) -> Contact | None:
    link = s.scalar(select(ContactLink).where(ContactLink.workspace_id == workspace_id,
                                              ContactLink.platform == platform,
                                              ContactLink.external_id == external_id))
    return None if link is None else s.get(Contact, link.contact_id)


def find_for_request(s: Session, workspace_id: int, request: PrivacyRequest) -> Contact | None:
    """The platform's customer id first, then each phone the request carries."""
    if request.customer_external_id:
        contact = _by_link(s, workspace_id, request.platform, request.customer_external_id)
        if contact is not None:
            return contact
    for candidate in request.phones:
        try:
            contact = find_contact(s, workspace_id, candidate.raw, candidate.country)
        except PhoneError as exc:
            _log.info("privacy request phone (%s) not usable: %s", candidate.source, exc)
            continue
        if contact is not None:
            return contact
    return None


# ---------------------------------------------------------------- export


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _row(obj: Base, *, skip: tuple[str, ...] = ("workspace_id",)) -> dict[str, Any]:
    """Every column of a row (so a column added later is exported too)."""
    return {c.key: _jsonable(getattr(obj, c.key)) for c in obj.__table__.columns if c.key not in skip}


def _rows(s: Session, model: type[Base], *where: Any) -> list[dict[str, Any]]:
    return [_row(r) for r in s.scalars(select(model).where(*where).order_by(model.id))]


def _consent(s: Session, contact_id: int) -> dict[str, Any]:
    entries = s.scalars(select(ConsentEvent).where(ConsentEvent.contact_id == contact_id)
                        .order_by(ConsentEvent.at, ConsentEvent.id)).all()
    state = consent_rules.derive(entries)
    current = _jsonable(dataclasses.asdict(state))
    ledger = [_row(e, skip=("workspace_id", "contact_id")) for e in entries]
    return {"current": current, "ledger": ledger}


def export_contact(s: Session, contact_id: int) -> dict[str, Any]:
    """Everything held about one contact, JSON-serialisable (ISO instants, decimals as text)."""
    contact = s.get(Contact, contact_id)
    if contact is None:
        raise LookupError(f"no contact {contact_id}")
    return {
        "format": EXPORT_FORMAT,
        "found": True,
        "contact": _row(contact),
        "links": [{"platform": link.platform, "external_id": link.external_id} for link in
                  s.scalars(select(ContactLink).where(ContactLink.contact_id == contact_id).order_by(ContactLink.id))],
        "consent": _consent(s, contact_id),
        "conversations": _rows(s, Conversation, Conversation.contact_id == contact_id),
        "messages": _rows(s, Message, Message.contact_id == contact_id),
        "carts": _rows(s, Cart, Cart.contact_id == contact_id),
        "flow_runs": _rows(s, FlowRun, FlowRun.contact_id == contact_id),
    }


def write_export(path: str | os.PathLike[str], data: dict[str, Any]) -> Path:
    """Write ``data`` as JSON atomically (temp file in the same folder, then rename); 0600."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, ensure_ascii=False, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def export_path(export_dir: str | os.PathLike[str], request: PrivacyRequest) -> Path:
    """``{export_dir}/{platform}-{account}-{request id or customer id}.json``, made filename-safe."""
    which = request.request_id or request.customer_external_id or "unknown"
    name = "-".join(_safe_part(part) for part in (request.platform, request.account, which))
    return Path(export_dir) / f"{name}.json"


def _safe_part(text: str, limit: int = 64) -> str:
    """Filename-safe, and short: a long id (the payload's to choose) would exceed the file system's
    255 bytes and fail the job on every retry; a long one keeps its start and a digest of the whole."""
    safe = _SAFE.sub("_", text)
    if len(safe) <= limit:
        return safe
    return safe[:limit - 17] + "_" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


# ---------------------------------------------------------------- erasure


def _hash(salt: str, key: str) -> str:
    return hashlib.sha256((salt + key).encode("utf-8")).hexdigest()


def erase_keys(s: Session, contact: Contact) -> set[str]:
    """The keys whose hashes outlive an erasure: phone match keys, wa_id and BSUID."""
    keys = set(s.scalars(select(ContactLink.external_id).where(ContactLink.contact_id == contact.id,
                                                               ContactLink.platform.in_(_KEY_PLATFORMS))))
    for e164 in (contact.phone_e164, _wa_phone(contact.wa_id)):
        if e164:
            keys |= phones.match_keys(e164)
    keys |= {k for k in (contact.wa_id, contact.user_id) if k}
    return keys


def _wa_phone(wa_id: str | None) -> str | None:
    try:
        return phones.from_wa_id(wa_id) if wa_id else None
    except PhoneError:
        return None


def was_erased(s: Session, workspace_id: int, keys: Iterable[str], salt: str = _DEFAULT_SALT) -> bool:
    """True when any of ``keys`` (phone match keys in E.164, a wa_id, a BSUID) belonged to a
    contact erased in this workspace."""
    hashes = sorted({_hash(salt, k) for k in keys if k})
    if not hashes:
        return False
    return s.scalar(select(ErasedContact.id).where(ErasedContact.workspace_id == workspace_id,
                                                   ErasedContact.key_hash.in_(hashes)).limit(1)) is not None


def _remember(s: Session, workspace_id: int, keys: set[str], salt: str, now: datetime) -> None:
    hashes = {_hash(salt, k) for k in keys}
    known = set(s.scalars(select(ErasedContact.key_hash).where(ErasedContact.workspace_id == workspace_id,
                                                               ErasedContact.key_hash.in_(sorted(hashes)))))
    for key_hash in sorted(hashes - known):
        s.add(ErasedContact(workspace_id=workspace_id, key_hash=key_hash, erased_at=now))


def _stop(s: Session, contact_id: int, now: datetime) -> None:
    """Cancel the contact's active runs and everything still queued for them."""
    for run in s.scalars(select(FlowRun).where(FlowRun.contact_id == contact_id, FlowRun.active_key.is_not(None))):
        run.status, run.active_key, run.outcome = "cancelled", None, "contact erased"
        run.waiting_for, run.wake_at, run.ended_at, run.updated_at = None, None, now, now
    for msg in s.scalars(select(Message).where(Message.contact_id == contact_id, Message.direction == "out",
                                               Message.status == "queued")):
        msg.status, msg.status_at, msg.error_details = "cancelled", now, "contact erased"


def _redact_history(s: Session, contact_id: int) -> None:
    for msg in s.scalars(select(Message).where(Message.contact_id == contact_id)):
        msg.body, msg.request = None, None
    for entry in s.scalars(select(ConsentEvent).where(ConsentEvent.contact_id == contact_id)):
        entry.evidence = REDACTED
    for conv in s.scalars(select(Conversation).where(Conversation.contact_id == contact_id)):
        conv.handoff_reason = None  # rendered from flow text that may name the customer
    for cart in s.scalars(select(Cart).where(Cart.contact_id == contact_id)):
        cart.contact_id, cart.recovery_url = None, None


def _accounts(s: Session, workspace_id: int) -> list[str]:
    channels = s.scalars(select(Channel.phone_number_id).where(Channel.workspace_id == workspace_id))
    shops = s.scalars(select(Installation.account).where(Installation.workspace_id == workspace_id))
    return [*channels, *shops]


def _redact_events(s: Session, contact: Contact, needles: set[str]) -> int:
    """Blank the raw webhook copies (already processed, of this workspace's numbers and shops)
    that mention one of the contact's keys; the row stays so a redelivery is still a duplicate."""
    subjects = set(s.scalars(select(Cart.token).where(Cart.contact_id == contact.id)))
    subjects |= set(s.scalars(select(Message.wamid).where(Message.contact_id == contact.id,
                                                          Message.wamid.is_not(None))))
    needles = {n for n in needles if n and len(n) >= 6}
    match = [InboundEvent.body.contains(n, autoescape=True) for n in sorted(needles)]
    match += [InboundEvent.subject.in_(sorted(subjects))] if subjects else []
    if not match:
        return 0
    events = s.scalars(select(InboundEvent).where(
        InboundEvent.account.in_(_accounts(s, contact.workspace_id)),
        InboundEvent.status.not_in(("pending", "orphan")), InboundEvent.body != "{}", or_(*match))).all()
    for event in events:
        event.body = "{}"
    return len(events)


def erase_contact(s: Session, contact_id: int, now: datetime, *, salt: str = _DEFAULT_SALT) -> None:
    """Erase one contact (see the module docstring). Erasing twice is harmless."""
    contact = s.get(Contact, contact_id)
    if contact is None:
        return
    keys = erase_keys(s, contact)
    _remember(s, contact.workspace_id, keys, salt, now)
    links = set(s.scalars(select(ContactLink.external_id).where(ContactLink.contact_id == contact_id)))
    needles = keys | links | {k.lstrip("+") for k in keys} | {contact.email or ""}
    _redact_events(s, contact, needles)
    _stop(s, contact_id, now)
    _redact_history(s, contact_id)
    s.execute(delete(ContactLink).where(ContactLink.contact_id == contact_id))
    for name in _PERSONAL_FIELDS:
        setattr(contact, name, None)
    contact.updated_at = now
    s.flush()
    _log.info("contact %s erased (%d keys remembered as hashes)", contact_id, len(keys))


# ---------------------------------------------------------------- platform requests


def _describe(request: PrivacyRequest) -> str:
    masked = ", ".join(phones.mask(p.raw) for p in request.phones) or "no phone"
    return f"{request.kind} from {request.platform} {request.account} (customer {request.customer_external_id}, {masked})"


def _data_request(s: Session, ws: Workspace, request: PrivacyRequest, now: datetime, export_dir: str) -> None:
    contact = find_for_request(s, ws.id, request)
    if contact is None:
        data: dict[str, Any] = {"format": EXPORT_FORMAT, "found": False,
                                "note": "replyflow holds no data about this customer"}
    else:
        data = export_contact(s, contact.id)
    data["request"] = {"platform": request.platform, "account": request.account, "request_id": request.request_id,
                       "customer_external_id": request.customer_external_id, "orders": list(request.orders)}
    data["generated_at"] = now.isoformat()
    path = write_export(export_path(export_dir, request), data)
    _log.info("%s: %s written to %s", _describe(request), "export" if contact else "empty export", path)


def _redact_customer(s: Session, ws: Workspace, request: PrivacyRequest, now: datetime, salt: str) -> None:
    contact = find_for_request(s, ws.id, request)
    if contact is None:
        _log.info("%s: no such contact, nothing to erase", _describe(request))
        return
    erase_contact(s, contact.id, now, salt=salt)
    _log.info("%s: contact %s erased", _describe(request), contact.id)


def _redact_account(s: Session, ws: Workspace, request: PrivacyRequest, now: datetime, salt: str) -> None:
    """Erase what came from one shop: its contacts (those linked by its account-scoped keys or owning
    its carts; a contact another shop of the workspace also knows only loses this shop's links), its
    carts' links, the raw copies of its webhooks, and its token."""
    prefix = f"{request.account}:"
    erased = unlinked = 0
    for contact_id in accounts.contacts_of(s, ws.id, request.platform, request.account):
        others = s.scalar(select(ContactLink.id).where(
            ContactLink.contact_id == contact_id, ContactLink.platform == request.platform,
            ~ContactLink.external_id.startswith(prefix, autoescape=True)).limit(1))
        if others is None:
            erase_contact(s, contact_id, now, salt=salt)
            erased += 1
        else:
            s.execute(delete(ContactLink).where(ContactLink.contact_id == contact_id,
                                                ContactLink.platform == request.platform,
                                                ContactLink.external_id.startswith(prefix, autoescape=True)))
            unlinked += 1
    for cart in accounts.carts_of(s, ws.id, request.platform, request.account):
        cart.recovery_url = None
    for event in s.scalars(select(InboundEvent).where(InboundEvent.platform == request.platform,
                                                      InboundEvent.account == request.account,
                                                      InboundEvent.status.not_in(("pending",)))):
        event.body = "{}"
    inst = s.scalar(select(Installation).where(Installation.platform == request.platform,
                                               Installation.account == request.account))
    if inst is not None:
        inst.status, inst.credentials, inst.updated_at = "erased", None, now
    _log.info("%s: %d contacts erased, %d shared contacts unlinked, installation marked erased",
              _describe(request), erased, unlinked)


def handle_request(s: Session, ws: Workspace, request: PrivacyRequest, now: datetime, *, export_dir: str,
                   salt: str = _DEFAULT_SALT) -> None:
    """Act on a platform's privacy request: ``data_request`` writes an export file,
    ``redact_customer`` erases that contact, ``redact_account`` erases the shop's contacts."""
    if request.kind == "data_request":
        _data_request(s, ws, request, now, export_dir)
    elif request.kind == "redact_customer":
        _redact_customer(s, ws, request, now, salt)
    elif request.kind == "redact_account":
        _redact_account(s, ws, request, now, salt)
    else:
        _log.warning("privacy request of unknown kind %r ignored", request.kind)
    s.flush()
