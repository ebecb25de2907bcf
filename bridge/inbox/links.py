"""Links into the inbox for other systems (the CRM handoff task links to the conversation)."""

from __future__ import annotations

from bridge.config import Settings

__all__ = ["conversation_url"]


def conversation_url(settings: Settings, conversation_id: int) -> str:
    """The conversation in the inbox; an agent who is not signed in signs in first and lands there."""
    return settings.conversation_url(int(conversation_id))
