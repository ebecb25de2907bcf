"""SQLAlchemy models: the system of record. Every record carries its workspace.

One module per kind of record; every model is imported here so the mapper sees them all and
``from core.store.models import X`` (and the migrations' ``core.store.models.UTCDateTime``) keep working.
"""

# Money, UTCDateTime and in_status stay importable from here, as before (the migrations name the types)
from core.store.models.base import Base, Money, UTCDateTime, in_status
from core.store.models.campaigns import Campaign
from core.store.models.carts import Cart
from core.store.models.contacts import ConsentEvent, Contact, ContactLink, ErasedContact
from core.store.models.conversations import Conversation, Incident, Message
from core.store.models.flows import ActionTask, FlowRun, FlowVersion
from core.store.models.inbox import Agent, AgentRead, AgentSession, SignInThrottle
from core.store.models.platform_events import InboundEvent, WritebackTask
from core.store.models.templates import TemplateRecord
from core.store.models.workspaces import Channel, DatabaseIdentity, Installation, Workspace

__all__ = [
    "Base",
    "Money",
    "UTCDateTime",
    "in_status",
    "DatabaseIdentity",
    "Workspace",
    "Channel",
    "Installation",
    "Contact",
    "ContactLink",
    "ConsentEvent",
    "Conversation",
    "Message",
    "Cart",
    "FlowRun",
    "InboundEvent",
    "ErasedContact",
    "Incident",
    "FlowVersion",
    "ActionTask",
    "Campaign",
    "WritebackTask",
    "Agent",
    "AgentRead",
    "AgentSession",
    "SignInThrottle",
    "TemplateRecord",
]

