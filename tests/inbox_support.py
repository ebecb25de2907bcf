"""Helpers for the inbox tests: agents, a signed-in test client, a cart handed off to an agent."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from core.store.models import Conversation, FlowRun
from bridge.app import create_app
from bridge.inbox.accounts import create_agent
from tests.harness import Harness

ADMIN = ("admin@example.com", "admin-password-1")
AGENT = ("agent@example.com", "agent-password-1")
WA_ID, NAME = "15550002222", "Maya Lindqvist"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def add_agents(h: Harness) -> None:
    with h.session() as s:
        create_agent(s, email=ADMIN[0], password=ADMIN[1], role="admin", name="Ada", now=h.clock.now())
        create_agent(s, email=AGENT[0], password=AGENT[1], role="agent", name="Ben", now=h.clock.now())


def csrf_of(html: bytes | str) -> str:
    text = html.decode() if isinstance(html, bytes) else html
    return _CSRF.search(text).group(1)


def signed_in(h: Harness, who: tuple[str, str] = AGENT):
    client = create_app(h.rt).test_client()
    token = csrf_of(client.get("/inbox/login").data)
    response = client.post("/inbox/login", data={"email": who[0], "password": who[1], "csrf_token": token})
    assert response.status_code == 302, response.data
    client.csrf = csrf_of(client.get("/inbox/").data)
    return client


def cart_handed_off(h: Harness) -> int:
    """The cart story up to the handoff: checkout, reminder, the customer taps "I need help"."""
    assert h.shopify("checkouts_create").status_code == 200
    with h.session() as s:
        wake = s.scalars(select(FlowRun)).one().wake_at
    h.at(wake)
    h.sandbox.customer_sends(WA_ID, NAME, button=("cart_help", "I need help"))
    h.settle()
    with h.session() as s:
        conv = s.scalars(select(Conversation)).one()
        assert conv.mode == "agent" and conv.assignee is None
        return conv.id


def past_window(h: Harness) -> None:
    h.clock.advance(timedelta(hours=24, minutes=1))


def client_at(h, address: str = "127.0.0.1"):
    """A browser of its own at a client address, holding the login page's CSRF token."""
    client = create_app(h.rt).test_client()
    client.environ_base["REMOTE_ADDR"] = address
    client.csrf = csrf_of(client.get("/inbox/login").data)
    return client


def sign_in_as(client, email: str, password: str):
    """POST the login form; after a sign-in the new session's CSRF token is kept."""
    response = client.post("/inbox/login", data={"email": email, "password": password, "csrf_token": client.csrf})
    if response.status_code == 302:  # a new session, with a new CSRF token
        client.csrf = csrf_of(client.get("/inbox/login").data)
    return response
