"""Privacy: export everything held about a contact, erase it, and remember only salted hashes."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select

from core import phones, privacy
from core.errors import PhoneError
from core.events import PhoneCandidate, PrivacyRequest
from core.store import Database, session_scope
from core.store.models import (
    Cart, Channel, ConsentEvent, Contact, ContactLink, Conversation, ErasedContact, FlowRun, InboundEvent,
    Installation, Message, Workspace,
)

T0 = datetime(2025, 11, 3, 14, 0, 0, tzinfo=timezone.utc)
H = timedelta(hours=1)
SALT = "test-salt"
SHOP = "lumen-tea-co.myshopify.com"
PHONE, WA_ID, BSUID, CUSTOMER = "+15550002222", "15550002222", "US.13491208655302741918", "7700000000101"
TOKEN = "7d0c3b5e2a914f6c8e1d9b4a6f2c0e85"
RECOVERY = f"https://{SHOP}/checkouts/{TOKEN}/recover?key=abc"


@pytest.fixture
def db(tmp_path):
    database = Database("sqlite:///" + str(tmp_path / "t.db"))
    database.create_all()
    yield database
    database.dispose()


def _contact(s, ws, *, phone, wa_id=None, user_id=None, shop_id=None, first="Maya", email=None) -> Contact:
    c = Contact(workspace_id=ws.id, phone_e164=phone, wa_id=wa_id, user_id=user_id, first_name=first,
                last_name="Lindqvist", profile_name=first, email=email, locale="en-US",
                timezone="America/Los_Angeles", created_at=T0, updated_at=T0)
    s.add(c)
    s.flush()
    keys = [("phone", k) for k in sorted(phones.match_keys(phone))]
    keys += [(p, k) for p, k in (("whatsapp", wa_id), ("bsuid", user_id), ("shopify", shop_id)) if k]
    for platform, key in keys:
        s.add(ContactLink(workspace_id=ws.id, contact_id=c.id, platform=platform, external_id=key))
    return c


def _msg(s, conv, direction, kind, body, status, at, **kw) -> Message:
    m = Message(workspace_id=conv.workspace_id, conversation_id=conv.id, contact_id=conv.contact_id,
                direction=direction, author="customer" if direction == "in" else "bot", kind=kind, body=body,
                status=status, status_at=at, created_at=at, **kw)
    s.add(m)
    return m


def _event(s, account, status, body, subject=None, key=None) -> None:
    s.add(InboundEvent(platform="shopify", dedupe_key=key or f"k{hash((account, status, body))}", kind="x",
                       account=account, subject=subject, body=body, status=status, received_at=T0))


def _history(s) -> dict[str, int]:
    """Maya: a shop customer who opted in at checkout, got a reminder, replied, opted out and in again."""
    ws = Workspace(slug="default", name="Shop", settings={})
    s.add(ws)
    s.flush()
    channel = Channel(workspace_id=ws.id, phone_number_id="106000000000002", display_phone="15550001111")
    s.add_all([channel, Installation(workspace_id=ws.id, platform="shopify", account=SHOP)])
    maya = _contact(s, ws, phone=PHONE, wa_id=WA_ID, user_id=BSUID, shop_id=CUSTOMER, email="maya@example.com")
    other = _contact(s, ws, phone="+15550003333", wa_id="15550003333", first="Noor")
    s.flush()
    for contact in (maya, other):
        s.add(ConsentEvent(workspace_id=ws.id, contact_id=contact.id, purpose="marketing", action="opt_in",
                           source="shopify.checkout", evidence=json.dumps({"sms_marketing_phone": contact.phone_e164}),
                           at=T0, recorded_at=T0))
    s.add_all([
        ConsentEvent(workspace_id=ws.id, contact_id=maya.id, purpose="marketing", action="opt_out",
                     source="keyword", evidence="STOP", at=T0 + 3 * H, recorded_at=T0 + 3 * H),
        ConsentEvent(workspace_id=ws.id, contact_id=maya.id, purpose="marketing", action="opt_in",
                     source="keyword", evidence="START", at=T0 + 4 * H, recorded_at=T0 + 4 * H),
    ])
    conv = Conversation(workspace_id=ws.id, contact_id=maya.id, channel_id=channel.id, mode="agent",
                        handoff_reason="Maya needs help with her cart", last_inbound_at=T0 + 2 * H, updated_at=T0)
    other_conv = Conversation(workspace_id=ws.id, contact_id=other.id, channel_id=channel.id, updated_at=T0)
    s.add_all([conv, other_conv])
    s.flush()
    cart = Cart(workspace_id=ws.id, platform="shopify", token=TOKEN, contact_id=maya.id, total=Decimal("112.00"),
                currency="USD", recovery_url=RECOVERY, last_event_at=T0, created_at=T0)
    active = FlowRun(workspace_id=ws.id, contact_id=maya.id, flow_name="cart_recovery", flow_version=1,
                     subject=f"cart:{TOKEN}", active_key=f"cart_recovery:cart:{TOKEN}", status="waiting",
                     step="second_reminder", waiting_for="timer", wake_at=T0 + 24 * H, vars={"_sends": 1},
                     started_at=T0, updated_at=T0)
    done = FlowRun(workspace_id=ws.id, contact_id=maya.id, flow_name="cart_recovery", flow_version=1,
                   subject="cart:old", active_key=None, status="completed", vars={}, outcome="recovered",
                   started_at=T0 - 48 * H, updated_at=T0 - 47 * H, ended_at=T0 - 47 * H)
    other_run = FlowRun(workspace_id=ws.id, contact_id=other.id, flow_name="cart_recovery", flow_version=1,
                        subject="cart:noor", active_key="cart_recovery:cart:noor", status="waiting", vars={},
                        waiting_for="timer", wake_at=T0 + H, started_at=T0, updated_at=T0)
    s.add_all([cart, active, done, other_run])
    s.flush()
    _msg(s, conv, "out", "template", "Hi Maya, your cart is waiting: " + RECOVERY, "read", T0 + H,
         template_name="cart_reminder", template_category="marketing", wamid="wamid.REMINDER",
         request={"template": "cart_reminder", "params": {"first_name": "Maya"}}, flow_run_id=active.id)
    _msg(s, conv, "in", "text", "I need help, my card was declined", "received", T0 + 2 * H, wamid="wamid.IN")
    _msg(s, conv, "out", "text", "Maya, one more thing…", "queued", T0 + 5 * H, flow_run_id=active.id,
         request={"text": "Maya, one more thing…"})
    _msg(s, other_conv, "out", "text", "Hello Noor", "queued", T0 + 5 * H, flow_run_id=other_run.id,
         request={"text": "Hello Noor"})
    _event(s, SHOP, "done", json.dumps({"token": TOKEN, "phone": PHONE}), subject=TOKEN, key="e-cart")
    _event(s, "106000000000002", "done", json.dumps({"from": WA_ID, "text": "I need help"}), key="e-wa")
    _event(s, SHOP, "pending", json.dumps({"phone": PHONE}), key="e-pending")
    _event(s, "other-shop.myshopify.com", "done", json.dumps({"phone": PHONE}), key="e-foreign")
    _event(s, SHOP, "done", json.dumps({"phone": "+15550003333"}), key="e-noor")
    s.flush()
    return {"ws": ws.id, "maya": maya.id, "other": other.id, "active": active.id, "done": done.id,
            "other_run": other_run.id, "cart": cart.id}


@pytest.fixture
def ids(db):
    with session_scope(db) as s:
        return _history(s)


# --------------------------------------------------------------------------- finding


@pytest.mark.parametrize("raw, country", [(PHONE, None), ("(555) 000-2222", "US"), ("001 555 000 2222", None),
                                          ("tel:+1-555-000-2222", None)])
def test_find_contact_by_any_format(db, ids, raw, country):
    with session_scope(db) as s:
        assert privacy.find_contact(s, ids["ws"], raw, country).id == ids["maya"]


def test_find_contact_unknown_and_invalid(db, ids):
    with session_scope(db) as s:
        assert privacy.find_contact(s, ids["ws"], "+15550009999") is None
        with pytest.raises(PhoneError, match="too short for US"):
            privacy.find_contact(s, ids["ws"], "555 12", "US")


# --------------------------------------------------------------------------- export


def test_export_holds_every_section(db, ids):
    with session_scope(db) as s:
        data = privacy.export_contact(s, ids["maya"])
    data = json.loads(json.dumps(data))  # JSON-serialisable as is
    assert data["found"] is True
    contact = data["contact"]
    assert (contact["phone_e164"], contact["wa_id"], contact["user_id"]) == (PHONE, WA_ID, BSUID)
    assert (contact["first_name"], contact["email"], contact["created_at"]) == ("Maya", "maya@example.com",
                                                                                T0.isoformat())
    assert {(link["platform"], link["external_id"]) for link in data["links"]} == {
        ("phone", PHONE), ("whatsapp", WA_ID), ("bsuid", BSUID), ("shopify", CUSTOMER)}
    ledger = data["consent"]["ledger"]
    assert [(e["action"], e["source"], e["evidence"]) for e in ledger] == [
        ("opt_in", "shopify.checkout", json.dumps({"sms_marketing_phone": PHONE})),
        ("opt_out", "keyword", "STOP"), ("opt_in", "keyword", "START")]
    assert ledger[1]["at"] == (T0 + 3 * H).isoformat()
    current = data["consent"]["current"]
    assert current["marketing_opt_in"] is True and current["marketing_source"] == "keyword"
    assert current["marketing_at"] == (T0 + 4 * H).isoformat()
    assert [c["mode"] for c in data["conversations"]] == ["agent"]
    messages = data["messages"]
    assert [(m["direction"], m["kind"], m["status"]) for m in messages] == [
        ("out", "template", "read"), ("in", "text", "received"), ("out", "text", "queued")]
    assert messages[0]["template_name"] == "cart_reminder" and RECOVERY in messages[0]["body"]
    assert messages[0]["request"]["params"] == {"first_name": "Maya"}
    assert messages[1]["body"] == "I need help, my card was declined" and messages[1]["author"] == "customer"
    assert "error_details" in messages[0] and messages[0]["created_at"] == (T0 + H).isoformat()
    [cart] = data["carts"]
    assert (cart["total"], cart["currency"], cart["recovery_url"]) == ("112.00", "USD", RECOVERY)
    assert sorted(r["status"] for r in data["flow_runs"]) == ["completed", "waiting"]
    assert "Noor" not in json.dumps(data)


def test_export_of_missing_contact_raises(db, ids):
    with session_scope(db) as s, pytest.raises(LookupError):
        privacy.export_contact(s, 999)


# --------------------------------------------------------------------------- erasure


def _erase(db, ids, now=T0 + 10 * H):
    with session_scope(db) as s:
        privacy.erase_contact(s, ids["maya"], now, salt=SALT)


def test_erase_redacts_everything_personal_and_keeps_the_shape(db, ids):
    now = T0 + 10 * H
    _erase(db, ids, now)
    with session_scope(db) as s:
        maya = s.get(Contact, ids["maya"])
        assert all(getattr(maya, f) is None for f in ("phone_e164", "wa_id", "user_id", "first_name", "last_name",
                                                      "email", "profile_name"))
        assert maya.updated_at == now
        assert s.scalars(select(ContactLink).where(ContactLink.contact_id == ids["maya"])).all() == []
        msgs = s.scalars(select(Message).where(Message.contact_id == ids["maya"]).order_by(Message.id)).all()
        assert [(m.body, m.request) for m in msgs] == [(None, None)] * 3
        assert [(m.direction, m.kind, m.status) for m in msgs] == [
            ("out", "template", "read"), ("in", "text", "received"), ("out", "text", "cancelled")]
        assert msgs[0].template_name == "cart_reminder" and msgs[0].created_at == T0 + H
        ledger = s.scalars(select(ConsentEvent).where(ConsentEvent.contact_id == ids["maya"])
                           .order_by(ConsentEvent.at)).all()
        assert [(e.purpose, e.action, e.source, e.at) for e in ledger] == [
            ("marketing", "opt_in", "shopify.checkout", T0), ("marketing", "opt_out", "keyword", T0 + 3 * H),
            ("marketing", "opt_in", "keyword", T0 + 4 * H)]
        assert {e.evidence for e in ledger} == {privacy.REDACTED}
        run = s.get(FlowRun, ids["active"])
        assert (run.status, run.active_key, run.outcome, run.ended_at) == ("cancelled", None, "contact erased", now)
        assert s.get(FlowRun, ids["done"]).status == "completed"
        cart = s.get(Cart, ids["cart"])
        assert (cart.contact_id, cart.recovery_url, cart.total) == (None, None, Decimal("112.00"))
        assert s.scalars(select(Conversation)).first().handoff_reason is None


def test_erase_blanks_raw_webhook_copies_of_this_workspace_only(db, ids):
    _erase(db, ids)
    with session_scope(db) as s:
        bodies = {e.dedupe_key: e.body for e in s.scalars(select(InboundEvent))}
    assert bodies["e-cart"] == "{}" and bodies["e-wa"] == "{}"
    assert PHONE in bodies["e-pending"]  # not processed yet: left for the worker
    assert PHONE in bodies["e-foreign"]  # another business's shop
    assert "+15550003333" in bodies["e-noor"]


def test_erase_leaves_other_contacts_alone(db, ids):
    _erase(db, ids)
    with session_scope(db) as s:
        noor = s.get(Contact, ids["other"])
        assert (noor.phone_e164, noor.first_name) == ("+15550003333", "Noor")
        assert s.get(FlowRun, ids["other_run"]).status == "waiting"
        assert s.scalar(select(Message).where(Message.contact_id == ids["other"])).status == "queued"
        assert s.scalar(select(ConsentEvent).where(ConsentEvent.contact_id == ids["other"])).evidence != privacy.REDACTED
        assert privacy.find_contact(s, ids["ws"], "+15550003333").id == ids["other"]


def test_erase_keeps_salted_hashes_of_the_keys(db, ids):
    _erase(db, ids)
    with session_scope(db) as s:
        hashes = set(s.scalars(select(ErasedContact.key_hash)))
    expected = {hashlib.sha256((SALT + k).encode()).hexdigest() for k in (PHONE, WA_ID, BSUID)}
    assert hashes == expected
    assert not any(PHONE in h or WA_ID in h for h in hashes)


def test_erase_twice_is_harmless(db, ids):
    _erase(db, ids)
    _erase(db, ids, T0 + 20 * H)
    with session_scope(db) as s:
        assert len(s.scalars(select(ErasedContact)).all()) == 3
        assert s.get(FlowRun, ids["active"]).ended_at == T0 + 10 * H
        privacy.erase_contact(s, 12345, T0, salt=SALT)  # unknown contact: nothing to do


@pytest.mark.parametrize("raw, country", [("(555) 000-2222", "US"), ("+1 555-000-2222", None)])
def test_was_erased_for_a_later_reference_in_another_format(db, ids, raw, country):
    _erase(db, ids)
    keys = phones.match_keys(phones.normalize(raw, country).e164)
    with session_scope(db) as s:
        assert privacy.was_erased(s, ids["ws"], keys, SALT)
        assert privacy.was_erased(s, ids["ws"], [WA_ID], SALT)
        assert not privacy.was_erased(s, ids["ws"], keys, "another-salt")
        assert not privacy.was_erased(s, ids["ws"], ["+15550003333"], SALT)
        assert not privacy.was_erased(s, ids["ws"] + 1, keys, SALT)
        assert not privacy.was_erased(s, ids["ws"], [], SALT)
        assert privacy.find_contact(s, ids["ws"], raw, country) is None


def test_brazilian_ninth_digit_forms_are_one_erased_person(db):
    with session_scope(db) as s:
        ws = Workspace(slug="br", name="Loja", settings={})
        s.add(ws)
        s.flush()
        ana = _contact(s, ws, phone="+5511987654321")
        s.flush()
        privacy.erase_contact(s, ana.id, T0, salt=SALT)
        assert privacy.was_erased(s, ws.id, phones.match_keys("+551187654321"), SALT)  # the pre-9 form


# --------------------------------------------------------------------------- requests


def _request(kind, **kw) -> PrivacyRequest:
    return PrivacyRequest(kind=kind, platform="shopify", account=SHOP, **kw)


def test_data_request_by_platform_id_writes_the_export(db, ids, tmp_path):
    with session_scope(db) as s:
        ws = s.get(Workspace, ids["ws"])
        privacy.handle_request(s, ws, _request("data_request", request_id="88001", customer_external_id=CUSTOMER),
                               T0 + 10 * H, export_dir=str(tmp_path / "exports"))
    path = tmp_path / "exports" / f"shopify-{SHOP}-88001.json"
    data = json.loads(path.read_text())
    assert data["found"] is True and data["contact"]["phone_e164"] == PHONE
    assert data["request"]["request_id"] == "88001" and data["generated_at"] == (T0 + 10 * H).isoformat()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind


def test_data_request_by_phone_and_for_an_unknown_customer(db, ids, tmp_path):
    phone = (PhoneCandidate(raw="(555) 000-2222", source="customer.phone", country="US"),)
    with session_scope(db) as s:
        ws = s.get(Workspace, ids["ws"])
        privacy.handle_request(s, ws, _request("data_request", customer_external_id="1", phones=phone), T0,
                               export_dir=str(tmp_path))
        privacy.handle_request(s, ws, _request("data_request", customer_external_id="2"), T0, export_dir=str(tmp_path))
    assert json.loads((tmp_path / f"shopify-{SHOP}-1.json").read_text())["contact"]["first_name"] == "Maya"
    empty = json.loads((tmp_path / f"shopify-{SHOP}-2.json").read_text())
    assert empty["found"] is False and "no data" in empty["note"] and empty["request"]["customer_external_id"] == "2"


def test_redact_customer_and_redact_account(db, ids, tmp_path):
    with session_scope(db) as s:
        ws = s.get(Workspace, ids["ws"])
        privacy.handle_request(s, ws, _request("redact_customer", customer_external_id=CUSTOMER), T0,
                               export_dir=str(tmp_path), salt=SALT)
        assert s.get(Contact, ids["maya"]).phone_e164 is None
        assert s.get(Contact, ids["other"]).phone_e164 is not None  # no shopify link: not this shop's customer
        s.add(ContactLink(workspace_id=ws.id, contact_id=ids["other"], platform="shopify", external_id=f"{SHOP}:42"))
        stranger = _contact(s, ws, phone="+15550008888")  # another shop's customer
        s.add(ContactLink(workspace_id=ws.id, contact_id=stranger.id, platform="shopify",
                          external_id="harbor-goods.myshopify.com:43"))
        s.flush()
        privacy.handle_request(s, ws, _request("redact_account"), T0, export_dir=str(tmp_path), salt=SALT)
        assert s.get(Contact, ids["other"]).phone_e164 is None
        assert s.get(Contact, stranger.id).phone_e164 == "+15550008888"  # links say which shop
        assert s.scalar(select(Installation)).status == "erased"
        assert privacy.was_erased(s, ws.id, ["+15550003333"], SALT)
    assert list(tmp_path.glob("*.json")) == []


def test_logs_carry_no_personal_data(db, ids, tmp_path, caplog):
    phone = (PhoneCandidate(raw=PHONE, source="customer.phone"),)
    caplog.set_level("INFO", logger="core.privacy")
    with session_scope(db) as s:
        ws = s.get(Workspace, ids["ws"])
        for kind in ("data_request", "redact_customer", "redact_account"):
            privacy.handle_request(s, ws, _request(kind, request_id="9", phones=phone), T0,
                                   export_dir=str(tmp_path), salt=SALT)
    text = caplog.text
    assert "+*******2222" in text and "erased" in text
    for secret in (PHONE, WA_ID, "Maya", "maya@example.com", BSUID):
        assert secret not in text
