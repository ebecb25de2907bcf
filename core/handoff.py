"""Human handoff: the conversation's owner moves from the bot to an agent and back."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from core.commands import SendText
from core.conversations import note
from core.errors import PayloadError
from core.gate import Decision
from core.outbox import queue
from core.store.models import Contact, Conversation, Message
from core.templates import Catalogue

__all__ = ["hand_off", "take", "requeue", "agent_reply", "release", "MAX_TEXT"]

MAX_TEXT = 4096  # WhatsApp's limit for a text message body


def hand_off(s: Session, conv: Conversation, reason: str, now: datetime, *, run_id: int | None = None) -> None:
    """Give the conversation to the agents; from now on no flow step reaches the contact."""
    if conv.mode == "agent":
        return
    conv.mode, conv.handoff_reason, conv.handed_off_at, conv.updated_at = "agent", reason, now, now
    note(s, conv, f"Handed off to an agent: {reason}", now, kind="handoff", run_id=run_id,
         data={"reason": reason, "owner": "queue"})


def agent_reply(s: Session, conv: Conversation, agent: str, text: str, catalogue: Catalogue,
                now: datetime) -> tuple[Message, Decision]:
    """An agent's free-form reply, through the gate like every other send.

    PayloadError, before anything changes, when the text is empty or longer than WhatsApp allows."""
    if not text.strip():
        raise PayloadError("text: the reply is empty; write 1 to 4096 characters")
    if len(text) > MAX_TEXT:
        raise PayloadError(f"text: {len(text)} characters is longer than WhatsApp's {MAX_TEXT}")
    if conv.mode != "agent":
        conv.mode, conv.handed_off_at = "agent", now
        note(s, conv, f"Agent {agent} took the conversation", now, kind="handoff")
    conv.assignee = conv.assignee or agent
    contact = s.get(Contact, conv.contact_id)
    return queue(s, contact=contact, conv=conv, command=SendText(text=text), author=f"agent:{agent}",
                 catalogue=catalogue, now=now)


def take(s: Session, conv: Conversation, agent: str, now: datetime) -> None:
    """An agent takes the conversation (from the queue, or from the bot directly)."""
    if conv.mode != "agent":
        conv.mode, conv.handed_off_at = "agent", now
    if conv.assignee != agent:
        conv.assignee, conv.updated_at = agent, now
        note(s, conv, f"Agent {agent} took the conversation", now, kind="handoff")


def requeue(s: Session, conv: Conversation, why: str, now: datetime) -> None:
    """Back to the handoff queue: still with the agents, but nobody's in particular (its agent left)."""
    if conv.mode != "agent" or conv.assignee is None:
        return
    conv.assignee, conv.updated_at = None, now
    note(s, conv, f"Back in the queue: {why}", now, data={"owner": "queue"})


def release(s: Session, conv: Conversation, agent: str, now: datetime) -> None:
    """Give the conversation back to the bot."""
    if conv.mode != "agent":
        return
    conv.mode, conv.assignee, conv.updated_at = "bot", None, now
    note(s, conv, f"Released to the bot by {agent}", now, kind="release", data={"agent": agent})
