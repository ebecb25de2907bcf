"""HubSpot records <-> core values: pure functions, one per field group.

Inbound: a contact record → ``ContactRef``; the opt-in property change → ``ConsentSignal``;
a meeting → the data the appointment-reminder flow reads (``event.service``,
``event.starts_at``); a deal stage change → ``{stage, deal_id}``.
Outbound: a write-back payload (core/writeback.py ``payload_of``) → the properties of a WhatsApp
Communication, a handoff Task or a Note.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

import phonenumbers as pn

from connectors.hubspot.client import Record
from connectors.hubspot.events import HubSpotEvent
from core import phones
from core.errors import PhoneError
from core.events import ConsentAction, ConsentPurpose, ConsentSignal, ContactRef, PhoneCandidate

__all__ = ["PLATFORM", "OPT_IN_PROPERTY", "LAST_REPLY_PROPERTY", "CONVERSATION_URL_PROPERTY", "PHONE_PROPERTIES",
           "CONTACT_PROPERTIES", "CUSTOM_PROPERTIES", "contact_ref", "consent", "meeting_data", "deal_data",
           "search_values", "phone_matches", "new_contact", "communication", "communication_update", "task",
           "note", "contact_update", "hs_time"]

PLATFORM = "hubspot"
OPT_IN_PROPERTY = "whatsapp_marketing_opt_in"
LAST_REPLY_PROPERTY = "whatsapp_last_reply_at"
CONVERSATION_URL_PROPERTY = "whatsapp_conversation_url"
PHONE_PROPERTIES = ("phone", "mobilephone", "hs_whatsapp_phone_number")
CONTACT_PROPERTIES = (*PHONE_PROPERTIES, "firstname", "lastname", "email", "hubspot_owner_id")
_TRUE = {"true", "yes", "1", "on", "checked"}
CUSTOM_PROPERTIES: tuple[dict[str, Any], ...] = (
    {"name": OPT_IN_PROPERTY, "label": "WhatsApp marketing opt-in", "type": "bool",
     "field_type": "booleancheckbox", "group_name": "contactinformation",
     "description": "Agreed to receive marketing on WhatsApp (replyflow records each change in its consent ledger).",
     "options": [{"label": "Yes", "value": "true", "display_order": 0, "hidden": False},
                 {"label": "No", "value": "false", "display_order": 1, "hidden": False}]},
    {"name": LAST_REPLY_PROPERTY, "label": "Last WhatsApp reply", "type": "datetime", "field_type": "date",
     "group_name": "contactinformation", "description": "When the contact last wrote on WhatsApp (replyflow)."},
    {"name": CONVERSATION_URL_PROPERTY, "label": "WhatsApp conversation", "type": "string", "field_type": "text",
     "group_name": "contactinformation", "description": "The conversation in replyflow's inbox."},
)


def hs_time(value: datetime | str) -> str:
    """HubSpot's timestamp format: UTC ISO 8601 with milliseconds and a Z."""
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    at = at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


# ---------------------------------------------------------------- inbound


def contact_ref(record: Record, country: str | None = None) -> ContactRef:
    """``country`` (the portal's, from the installation config) gives national numbers their meaning."""
    p = record.properties
    candidates = tuple(PhoneCandidate(raw=p[name], source=f"hubspot.{name}", country=country)
                       for name in ("hs_whatsapp_phone_number", "mobilephone", "phone") if p.get(name))
    return ContactRef(platform=PLATFORM, external_id=record.id, first_name=p.get("firstname") or None,
                      last_name=p.get("lastname") or None, email=p.get("email") or None, phones=candidates)


def consent(event: HubSpotEvent) -> ConsentSignal:
    """The opt-in property as HubSpot changed it; the event is the evidence, occurredAt the time."""
    value = (event.property_value or "").strip().lower()
    action = ConsentAction.OPT_IN if value in _TRUE else ConsentAction.OPT_OUT
    evidence = json.dumps({k: event.raw.get(k) for k in ("eventId", "portalId", "objectId", "propertyName",
                                                         "propertyValue", "changeSource", "sourceId", "occurredAt")},
                          sort_keys=True)
    return ConsentSignal(purpose=ConsentPurpose.MARKETING, action=action, source=PLATFORM, evidence=evidence,
                         at=event.occurred_at, welcomes=True)


def meeting_data(record: Record) -> dict[str, Any]:
    p = record.properties
    start = p.get("hs_meeting_start_time") or p.get("hs_timestamp")
    data: dict[str, Any] = {"meeting_id": record.id, "service": p.get("hs_meeting_title") or "appointment",
                            "starts_at": start}
    if start:
        try:
            at = datetime.fromisoformat(start.replace("Z", "+00:00"))
            data["starts_at_display"] = f"{at:%a} {at.day} {at:%b} at {at:%H:%M} UTC"
        except ValueError:
            pass
    if p.get("hs_meeting_location"):
        data["location"] = p["hs_meeting_location"]
    return data


def deal_data(event: HubSpotEvent, record: Record | None) -> dict[str, Any]:
    data: dict[str, Any] = {"deal_id": event.object_id, "stage": event.property_value}
    if record is not None:
        data.update({k: v for k, v in (("deal_name", record.properties.get("dealname")),
                                        ("amount", record.properties.get("amount"))) if v})
    return data


# ---------------------------------------------------------------- finding the contact


def search_values(e164: str, properties: Sequence[str] = PHONE_PROPERTIES) -> dict[str, list[str]]:
    """The values to search each phone property for: HubSpot matches strings exactly, so the forms
    people type: E.164, digits only, international and national formatting."""
    forms = [e164, e164.lstrip("+")]
    try:
        number = pn.parse(e164)
        forms += [pn.format_number(number, pn.PhoneNumberFormat.INTERNATIONAL),
                  pn.format_number(number, pn.PhoneNumberFormat.NATIONAL)]
    except pn.NumberParseException:
        pass
    return {prop: list(dict.fromkeys(forms)) for prop in properties}


def _region(e164: str) -> str | None:
    try:
        region = pn.region_code_for_country_code(pn.parse(e164).country_code)
        return None if region == "ZZ" else region
    except pn.NumberParseException:
        return None


def phone_matches(record: Record, e164: str, default_country: str | None = None) -> bool:
    """Does any phone property of the record name the same WhatsApp number (normalised to E.164)?"""
    wanted = phones.match_keys(e164)
    country = default_country or _region(e164)  # a national number is read in the searched number's country
    for name in PHONE_PROPERTIES:
        raw = record.properties.get(name)
        if not raw:
            continue
        try:
            if phones.match_keys(phones.normalize(raw, country).e164) & wanted:
                return True
        except PhoneError:
            continue
    return False


def new_contact(contact: Mapping[str, Any]) -> dict[str, str]:
    props = {"phone": contact["phone"]}
    first = contact.get("first_name") or contact.get("profile_name")
    for key, value in (("firstname", first), ("lastname", contact.get("last_name")), ("email", contact.get("email"))):
        if value:
            props[key] = str(value)
    return props


# ---------------------------------------------------------------- outbound


def _who(payload: Mapping[str, Any]) -> str:
    if payload.get("direction") == "in":
        return "Customer"
    author = str(payload.get("author") or "bot")
    return f"Agent {author.split(':', 1)[1]}" if author.startswith("agent:") else "Bot"


def _body(payload: Mapping[str, Any]) -> str:
    arrow = "←" if payload.get("direction") == "in" else "→"
    lines = [f"WhatsApp {arrow} {_who(payload)}: {payload.get('text') or '(' + str(payload.get('kind')) + ')'}"]
    if payload.get("template"):
        lines.append(f"Template: {payload['template']}")
    if payload.get("direction") == "out" and payload.get("status"):
        lines.append(f"Status: {payload['status']}")
    error = payload.get("error")
    if error:
        lines.append(f"Error: {error.get('code') or ''} {error.get('title') or error.get('details') or ''}".rstrip())
    return "\n".join(lines)


def communication(payload: Mapping[str, Any], owner_id: str | None = None) -> dict[str, str]:
    """A logged WhatsApp message on the contact's timeline."""
    props = {"hs_communication_channel_type": "WHATS_APP", "hs_communication_logged_from": "CRM",
             "hs_communication_body": _body(payload), "hs_timestamp": hs_time(payload["at"])}
    if owner_id:
        props["hubspot_owner_id"] = owner_id
    return props


def communication_update(payload: Mapping[str, Any]) -> dict[str, str]:
    """What changes when the same line changes (delivered, read, failed): the body with its status."""
    return {"hs_communication_body": _body(payload)}


def _transcript(lines: Sequence[Mapping[str, Any]]) -> str:
    return "\n".join(f"[{str(line.get('at', ''))[:16].replace('T', ' ')}] {_who(line)}: {line.get('text') or ''}"
                     for line in lines if line.get("direction") in ("in", "out"))


def task(payload: Mapping[str, Any], contact: Mapping[str, Any], transcript: Sequence[Mapping[str, Any]],
         conversation_url: str | None, owner_id: str | None) -> dict[str, str]:
    """A handoff: a to-do for the contact's owner with the conversation so far and where to answer."""
    name = " ".join(filter(None, (contact.get("first_name"), contact.get("last_name")))) or contact.get(
        "profile_name") or phones.mask(contact.get("phone") or "") or "a contact"
    reason = (payload.get("data") or {}).get("reason") or payload.get("text") or "handed off"
    body = [f"Reason: {reason}"]
    if conversation_url:
        body.append(f"Answer in replyflow: {conversation_url}")
    if transcript:
        body += ["", "Conversation so far:", _transcript(transcript)]
    props = {"hs_task_subject": f"WhatsApp: {name} needs an agent", "hs_task_body": "\n".join(body),
             "hs_task_status": "NOT_STARTED", "hs_task_priority": "HIGH", "hs_task_type": "TODO",
             "hs_timestamp": hs_time(payload["at"])}
    if owner_id:
        props["hubspot_owner_id"] = owner_id
    return props


def _outcome_text(payload: Mapping[str, Any]) -> str:
    data = payload.get("data") or {}
    what = str(data.get("outcome") or "outcome").replace("_", " ")
    parts = [f"WhatsApp outcome: {what}"]
    if data.get("order_id"):
        parts.append(f"order {data['order_id']}")
    if data.get("amount"):
        parts.append(f"{data['amount']} {data.get('currency') or ''}".strip())
    return " · ".join(parts)


def note(payload: Mapping[str, Any], conversation_url: str | None) -> dict[str, str]:
    """Release, outcomes and other system lines as a note on the contact."""
    kind = payload.get("kind")
    text = _outcome_text(payload) if kind == "outcome" else f"WhatsApp: {payload.get('text') or kind}"
    body = text if not conversation_url else f"{text}\nConversation: {conversation_url}"
    return {"hs_note_body": body, "hs_timestamp": hs_time(payload["at"])}


def contact_update(payload: Mapping[str, Any], conversation_url: str | None) -> dict[str, str]:
    """Contact properties a customer's line changes: the last reply time and the conversation link
    (our own lines change nothing, so a batch of outbound lines costs no contact update)."""
    if payload.get("direction") != "in":
        return {}
    props = {LAST_REPLY_PROPERTY: hs_time(payload["at"])}
    if conversation_url:
        props[CONVERSATION_URL_PROPERTY] = conversation_url
    return props
