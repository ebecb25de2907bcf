"""HubSpot events → core ``Trigger``s, through a table keyed by subscription type.

- ``contact.creation`` → ``contact_created`` (a flow listening to it starts, e.g. a welcome);
- ``contact.propertyChange`` of ``whatsapp_marketing_opt_in`` → ``contact_changed`` carrying a
  marketing ``ConsentSignal`` (source ``hubspot``, the event as evidence, ``occurredAt`` as its
  time, so an older change arriving late never outranks a newer one in the ledger);
- ``deal.propertyChange`` of ``dealstage`` → ``deal_stage_changed`` with ``{stage, deal_id}``;
- a meeting created (generic ``object.creation`` of ``0-47``) → ``booking_upcoming``, which the
  appointment-reminder flow listens to, with ``{service, starts_at, starts_at_display}``; a meeting
  deleted → ``booking_cancelled``, which stops that reminder.

Events name objects by id only: ``complete`` (run in the job, never in the request) reads the
contact, deal or meeting through the client to learn the phone and the flow's data.
Other property changes (including the ones replyflow itself writes) start nothing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from connectors.hubspot import mapper
from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.events import HubSpotEvent
from core.events import Trigger, TriggerKind

__all__ = ["to_trigger", "complete", "TOPICS", "MEETING_TYPE"]

MEETING_TYPE = "0-47"
_MEETING_PROPERTIES = ("hs_meeting_title", "hs_meeting_start_time", "hs_meeting_end_time", "hs_meeting_location",
                       "hs_timestamp", "hubspot_owner_id")


def _trigger(event: HubSpotEvent, kind: TriggerKind, subject: str, **kwargs) -> Trigger:
    return Trigger(kind=kind, platform=mapper.PLATFORM, account=event.portal_id, subject=subject,
                   occurred_at=event.occurred_at, raw=event.raw, **kwargs)


def _contact_created(event: HubSpotEvent) -> Trigger:
    return _trigger(event, TriggerKind.CONTACT_CREATED, f"hubspot:contact:{event.object_id}",
                    data={"contact_id": event.object_id, "source": event.change_source})


def _contact_property(event: HubSpotEvent) -> Trigger | None:
    if event.property_name != mapper.OPT_IN_PROPERTY:
        return None
    return _trigger(event, TriggerKind.CONTACT_CHANGED, f"hubspot:contact:{event.object_id}",
                    consent=(mapper.consent(event),), data={"contact_id": event.object_id,
                                                            "property": event.property_name,
                                                            "value": event.property_value})


def _deal_property(event: HubSpotEvent) -> Trigger | None:
    if event.property_name != "dealstage":
        return None
    return _trigger(event, TriggerKind.DEAL_STAGE_CHANGED, f"hubspot:deal:{event.object_id}",
                    data=mapper.deal_data(event, None))


def _meeting_deleted(event: HubSpotEvent) -> Trigger:
    return _trigger(event, TriggerKind.BOOKING_CANCELLED, f"hubspot:meeting:{event.object_id}",
                    data={"meeting_id": event.object_id})


def _meeting(event: HubSpotEvent) -> Trigger:
    return _trigger(event, TriggerKind.BOOKING_UPCOMING, f"hubspot:meeting:{event.object_id}",
                    data={"meeting_id": event.object_id})


TOPICS: dict[str, Callable[[HubSpotEvent], Trigger | None]] = {
    "contact.creation": _contact_created,
    "contact.propertyChange": _contact_property,
    "deal.propertyChange": _deal_property,
    f"object.creation:{MEETING_TYPE}": _meeting,
    f"object.deletion:{MEETING_TYPE}": _meeting_deleted,
}


def to_trigger(event: HubSpotEvent) -> Trigger | None:
    """The trigger for one event, or ``None`` for events that start nothing."""
    handler = TOPICS.get(event.kind)
    return handler(event) if handler else None


def complete(trigger: Trigger, client: HubSpotClient, country: str | None = None) -> Trigger:
    """Fill in who the trigger is about (and the meeting or deal details) from the CRM."""
    if trigger.kind is TriggerKind.BOOKING_CANCELLED:
        return trigger  # the meeting is gone; its runs are found by subject
    data = dict(trigger.data)
    contact_id: str | None = data.get("contact_id")
    if trigger.kind is TriggerKind.BOOKING_UPCOMING:
        meeting = client.get_meeting(data["meeting_id"], _MEETING_PROPERTIES)
        data.update(mapper.meeting_data(meeting))
        contact_id = meeting.contacts[0] if meeting.contacts else None
    elif trigger.kind is TriggerKind.DEAL_STAGE_CHANGED:
        deal = client.get_deal(data["deal_id"], ("dealname", "amount", "dealstage"))
        data.update({k: v for k, v in (("deal_name", deal.properties.get("dealname")),
                                        ("amount", deal.properties.get("amount"))) if v})
        contact_id = deal.contacts[0] if deal.contacts else None
    if contact_id is None:
        return replace(trigger, data=data)
    record = client.get_contact(contact_id, mapper.CONTACT_PROPERTIES)
    if record.properties.get("hubspot_owner_id"):
        data["owner_id"] = record.properties["hubspot_owner_id"]
    return replace(trigger, data=data, contact=mapper.contact_ref(record, country))
