"""The system of record: SQLAlchemy models and the session factory."""

from core.store.db import Database, session_scope
from core.store.models import (
    Base,
    Cart,
    Channel,
    ConsentEvent,
    Contact,
    ContactLink,
    Conversation,
    InboundEvent,
    Installation,
    Message,
    FlowRun,
    Workspace,
    in_status,
)

__all__ = [
    "Base",
    "Cart",
    "Channel",
    "ConsentEvent",
    "Contact",
    "ContactLink",
    "Conversation",
    "Database",
    "FlowRun",
    "InboundEvent",
    "Installation",
    "Message",
    "Workspace",
    "in_status",
    "session_scope",
]
