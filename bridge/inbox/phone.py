"""Sandbox only: a customer's phone. An admin plays the customer — picks or makes up a contact,
types, taps the buttons the bot sent — and every action goes through the sandbox, which posts a
signed webhook to /webhooks/whatsapp exactly as WhatsApp would."""

from __future__ import annotations

import re

import httpx
from flask import abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select

from core.store import session_scope
from core.store.models import Contact, Message
from bridge.inbox import bp
from bridge.inbox.security import admin_required
from bridge.inbox.util import rt
from bridge.inbox.views import page_cursor

__all__ = ["phone", "phone_send", "taps_of"]

_WA_ID = re.compile(r"^\d{8,15}$")


def _sandbox_url() -> str:
    settings = rt().settings
    if not settings.sandbox or not settings.whatsapp_api_base:
        abort(404)
    return settings.whatsapp_api_base.rstrip("/")


def taps_of(m: Message) -> list[dict]:
    """What the customer can tap on a message the bot sent: template quick replies, reply buttons, list rows."""
    req = m.request or {}
    if m.template_name:
        return [{"kind": "button", "id": p, "title": t} for p, t in req.get("buttons") or () if p]
    if req.get("list"):
        return [{"kind": "choice", "id": row["id"], "title": row["title"]}
                for section in req["list"].get("sections") or () for row in section.get("rows") or ()]
    return [{"kind": "choice", "id": i, "title": t} for i, t in req.get("buttons") or ()]


@bp.get("/sandbox/phone")
@admin_required
def phone():
    _sandbox_url()
    wa_id = request.args.get("wa_id", "")
    if not request.args.get("partial"):
        page_cursor()
    with session_scope(rt().db) as s:
        contacts = s.scalars(select(Contact).where(Contact.workspace_id == g.agent.workspace_id)
                             .order_by(Contact.id.desc()).limit(50)).all()
        people = [{"wa_id": c.wa_id or (c.phone_e164 or "").lstrip("+"),
                   "name": c.first_name or c.profile_name or "Customer"} for c in contacts]
        current = next((p for p in people if p["wa_id"] == wa_id), None)
        contact = next((c for c in contacts if (c.wa_id or (c.phone_e164 or "").lstrip("+")) == wa_id), None)
        messages = [] if contact is None else s.scalars(
            select(Message).where(Message.contact_id == contact.id, Message.direction.in_(("in", "out")),
                                  Message.status.not_in(("blocked", "cancelled")))
            .order_by(Message.id)).all()
        bubbles = [{"dir": m.direction, "body": m.body or f"[{m.kind}]", "taps": taps_of(m) if m.direction == "out" else [],
                    "status": m.status} for m in messages]
    name = request.args.get("name") or (current or {}).get("name") or "Customer"
    page = "inbox/_phone.html" if request.args.get("partial") else "inbox/phone.html"
    return render_template(page, people=people, wa_id=wa_id, name=name, bubbles=bubbles)


@bp.post("/sandbox/phone")
@admin_required
def phone_send():
    base = _sandbox_url()
    wa_id = "".join(ch for ch in request.form.get("wa_id", "") if ch.isdigit())
    name = (request.form.get("name") or "Customer").strip()[:80]
    if not _WA_ID.match(wa_id):
        flash("A WhatsApp number is 8 to 15 digits with the country code (e.g. 15550002222).", "error")
        return redirect(url_for("inbox.phone"))
    body: dict = {"name": name}
    if request.form.get("tap_kind") == "button":
        body.update(button_payload=request.form.get("tap_id", ""), button_text=request.form.get("tap_title", ""))
    elif request.form.get("tap_kind") == "choice":
        body.update(choice_id=request.form.get("tap_id", ""), choice_title=request.form.get("tap_title", ""))
    elif request.form.get("text", "").strip():
        body["text"] = request.form["text"].strip()[:4096]
    else:
        return redirect(url_for("inbox.phone", wa_id=wa_id, name=name))
    try:
        answer = httpx.post(f"{base}/_sandbox/customers/{wa_id}/messages", json=body, timeout=15)
        status = answer.json().get("bridge_status") if answer.status_code == 200 else answer.status_code
    except httpx.HTTPError as exc:
        status = f"{type(exc).__name__}"
    if status != 200:
        flash(f"The webhook was not accepted: {status}", "error")
    return redirect(url_for("inbox.phone", wa_id=wa_id, name=name))
