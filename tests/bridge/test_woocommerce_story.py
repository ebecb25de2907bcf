"""WooCommerce end to end: the real ``woocommerce`` client against the local store emulator, the
bridge on loopback, the WhatsApp sandbox and a manual clock."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from core.errors import PayloadError

from bridge.woocommerce_connect import connect
from core.metrics import report
from core.store.models import Cart, Contact, FlowRun, InboundEvent, Installation, Workspace
from tests.conftest import FIXTURES
from tests.emulators.woocommerce import WooStore
from tests.harness import Harness
from bridge.app import create_app
from bridge.servers import ServerThread

DRAFT_AT = datetime(2025, 11, 3, 15, 3, 31, tzinfo=timezone.utc)  # the draft fixture's date_modified_gmt
WA_ID = "15550006666"
OPT_IN = [{"id": 9001, "key": "whatsapp_opt_in", "value": "yes"}]


def order(name: str, **changes) -> dict:
    return {**json.loads((FIXTURES / "woocommerce" / f"{name}.json").read_bytes()), **changes}


def _connected(h: Harness):
    h.rt.settings = replace(h.rt.settings, public_url=h.server.url)
    store = WooStore(h.clock, keys={"ck_test": "cs_test"})
    connect(h.rt, store.url, "ck_test", "cs_test")
    return h, store


@pytest.fixture(params=["sqlite", "postgres"])
def woo(request, tmp_path):
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    h, store = _connected(Harness(tmp_path, start=DRAFT_AT, database_url=url))
    yield h, store
    store.close()
    h.close()


def _one(h: Harness, model):
    with h.session() as s:
        rows = s.scalars(select(model)).all()
        assert len(rows) == 1, rows
        s.expunge_all()
        return rows[0]


def test_connecting_registers_the_webhooks_answers_their_pings_and_seals_the_keys(woo):
    h, store = woo
    assert sorted(hook["topic"] for hook in store.webhooks.values()) == [
        "customer.created", "customer.updated", "order.created", "order.updated"]
    assert {hook["delivery_url"] for hook in store.webhooks.values()} == {f"{h.server.url}/webhooks/woocommerce"}
    assert [status for _, status in store.pings] == [200] * 4
    inst = _one(h, Installation)
    assert "cs_test" not in inst.credentials and "ck_test" not in inst.credentials
    assert inst.config["write_kinds"] == ["message", "handoff", "release", "outcome", "note"]
    assert inst.config["write_all_contacts"] is False and len(inst.config["webhooks"]) == 4
    secret = next(iter(store.webhooks.values()))["secret"]
    assert len(secret) >= 32 and h.rt.sealer.open(inst.credentials)["webhook_secret"] == secret
    connect(h.rt, store.url, "ck_test", "cs_test")  # again: the same four webhooks, with the new secret
    assert len(store.webhooks) == 4 and len(store.pings) == 4
    assert h.rt.sealer.open(_one(h, Installation).credentials)["webhook_secret"] == \
        next(iter(store.webhooks.values()))["secret"]
    with h.session() as s:
        assert s.scalar(select(func.count()).select_from(InboundEvent)) == 0  # pings record nothing


def test_done_when_a_checkout_draft_is_reminded_noted_and_recovered(woo):
    _done_when_story(*woo)


def test_done_when_story_with_rq_workers(tmp_path, redis_url):
    h, store = _connected(Harness(tmp_path, start=DRAFT_AT, runner="rq", redis_url=redis_url))
    try:
        _done_when_story(h, store)
    finally:
        store.close()
        h.close()


def _done_when_story(h: Harness, store: WooStore) -> None:
    # the block checkout saves a draft: order.updated, no order.created
    store.put_order(order("order_checkout_draft", meta_data=OPT_IN))
    h.settle()
    cart, run = _one(h, Cart), _one(h, FlowRun)
    assert (cart.token, cart.status, cart.total) == ("5124", "open", Decimal("23.00"))
    assert run.step == "wait_for_abandonment" and run.wake_at == DRAFT_AT + timedelta(hours=1)

    # nothing before the delay; the reminder exactly at it, with the order's payment link
    h.at(run.wake_at - timedelta(seconds=1))
    assert h.sandbox.sent == []
    h.at(run.wake_at)
    [sent] = [m.body for m in h.sandbox.sent]
    assert sent["to"] == f"+{WA_ID}" and sent["template"]["name"] == "cart_reminder"
    params = {p["parameter_name"]: p["text"] for p in sent["template"]["components"][0]["parameters"]}
    assert params["first_name"] == "José" and "order-pay/5124/" in params["recovery_link"]
    h.sandbox.deliver_statuses("read")
    h.settle()
    assert store.private_notes(5124) == []  # the bot's own message and its statuses are not notes

    # the customer answers: the reply becomes a private note; the bot asks again
    h.clock.advance(timedelta(minutes=3))
    h.sandbox.customer_sends(WA_ID, "José Ferreira", text="Can I pay on delivery instead?")
    h.settle()
    assert store.private_notes(5124) == ['WhatsApp reply from José Ferreira: "Can I pay on delivery instead?"'
                                         f"\nOpen the conversation: {h.server.url}/inbox/conversations/1"]
    # a second answer the bot does not understand: handed to an agent; reply and handoff are one note
    h.clock.advance(timedelta(minutes=1))
    h.sandbox.customer_sends(WA_ID, "José Ferreira", text="I'd rather talk to a person")
    h.settle()
    assert _one(h, FlowRun).status == "handed_off"
    handoff = store.private_notes(5124)[1]
    assert handoff.startswith("WhatsApp: José Ferreira was handed to an agent. Reason: Customer asked for help")
    assert 'Customer wrote: "Can I pay on delivery instead?" / "I\'d rather talk to a person"' in handoff
    assert len(store.private_notes(5124)) == 2
    assert all(not n["customer_note"] and n["author"] == "system" for n in store.notes[5124])

    # the order is paid: the flow stops, the revenue counts as recovered, the outcome is noted
    h.clock.advance(timedelta(minutes=20))
    store.put_order(order("order_checkout_draft", meta_data=OPT_IN, status="processing", payment_method="cod"))
    h.settle()
    cart, run = _one(h, Cart), _one(h, FlowRun)
    assert (cart.status, cart.order_id, cart.order_total) == ("recovered", "5124", Decimal("23.00"))
    assert run.status == "cancelled" and run.active_key is None
    assert store.private_notes(5124)[-1].startswith(
        "WhatsApp cart recovery: Order #5124 placed: cart recovered (23.00 USD)")
    with h.session() as s:
        [figures] = report(s, s.scalar(select(Workspace.id))).flows
        assert (figures.carts_recovered, figures.revenue) == (1, {"USD": Decimal("23.00")})
        assert s.scalar(select(InboundEvent).where(InboundEvent.status == "failed")) is None
    # days later: no second reminder
    before = len(h.sandbox.sent)
    h.at(h.clock.now() + timedelta(days=2))
    assert len(h.sandbox.sent) == before


def test_the_webhook_endpoint_answers_the_ping_refuses_bad_signatures_and_drops_repeats(woo):
    h, store = woo
    ping = h.http.post("/webhooks/woocommerce", content=b"webhook_id=42",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert ping.status_code == 200
    body = (FIXTURES / "woocommerce" / "order_checkout_draft.json").read_bytes()
    headers = {**json.loads((FIXTURES / "woocommerce" / "order_checkout_draft.headers.json").read_text()),
               "X-WC-Webhook-Source": f"{store.url}/"}
    assert h.http.post("/webhooks/woocommerce", content=body, headers=headers).status_code == 401  # fixture secret
    assert h.http.post("/webhooks/woocommerce", content=b'{"id": 1}', headers={
        **headers, "X-WC-Webhook-Source": "https://unknown.example/"}).status_code == 503
    store.put_order(order("order_checkout_draft"))
    hook = next(h for h in store.webhooks.values() if h["topic"] == "order.updated")
    store.deliver("order.updated", store.orders[5124])  # the same change again, with a new delivery id
    assert [d["status"] for d in store.deliveries] == [200, 200] and hook["failure_count"] == 0
    h.settle()
    with h.session() as s:
        assert s.scalar(select(func.count()).select_from(InboundEvent)) == 1


def test_reconciliation_finds_a_draft_whose_webhook_was_lost_and_runs_again_without_repeats(woo):
    from click.testing import CliRunner

    from bridge.cli import main

    h, store = woo
    store.put_order(order("order_checkout_draft", meta_data=OPT_IN), topic=None)  # never delivered
    h.settle()
    with h.session() as s:
        assert s.scalar(select(func.count()).select_from(Cart)) == 0
    h.sweep()  # the first sweep reconciles every connected store
    run = _one(h, FlowRun)
    assert run.wake_at == DRAFT_AT + timedelta(hours=1)  # the delay counts from the order's last change
    result = CliRunner().invoke(main, ["woocommerce", "reconcile"])
    assert result.exit_code == 0, result.output
    assert "1 orders seen, 0 new" in result.output
    first, second = store.order_queries[-2:]
    assert first["modified_after"] == "2025-11-02T15:03:31"  # the first pass reads the whole day back
    assert second["modified_after"] == "2025-11-03T14:03:31"  # later ones from an hour before the last
    assert set(second["status"].split(",")) >= {"pending", "checkout-draft", "processing", "on-hold", "cancelled"}
    h.at(run.wake_at)
    assert len(h.sandbox.sent) == 1
    assert _one(h, Installation).config["reconciled_at"] == run.wake_at.isoformat()


def test_on_hold_is_bought_not_abandoned(woo):
    h, store = woo
    store.put_order(order("order_created", meta_data=OPT_IN))  # pending: a cart
    h.settle()
    h.clock.advance(timedelta(minutes=5))
    store.put_order(order("order_created", meta_data=OPT_IN, status="on-hold", payment_method="bacs"))
    h.settle()
    assert _one(h, Cart).status == "ordered" and _one(h, FlowRun).status == "cancelled"
    h.at(h.clock.now() + timedelta(hours=3))
    assert h.sandbox.sent == []


def test_a_guest_who_registers_and_pays_a_new_order_gets_no_reminder(woo):
    h, store = woo
    store.put_order(order("order_checkout_draft", meta_data=OPT_IN))  # guest draft 5124
    h.settle()
    customer = json.loads((FIXTURES / "woocommerce" / "customer_created.json").read_bytes())
    customer["billing"]["phone"] = "(555) 000-6666"  # typed the national way this time
    store.deliver("customer.created", customer)
    h.clock.advance(timedelta(minutes=10))
    store.put_order(order("order_created", id=5130, number="5130", status="processing",
                          billing={**customer["billing"]}))  # a new order, as customer 88
    h.settle()
    with h.session() as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == 1  # the same person throughout
        draft = s.scalar(select(Cart).where(Cart.token == "5124"))
        assert draft.status == "ordered" and "#5130" in draft.problem
    h.at(DRAFT_AT + timedelta(hours=2))
    assert h.sandbox.sent == []


def test_a_late_draft_update_after_payment_changes_nothing(woo):
    h, store = woo
    paid = store.put_order(order("order_checkout_draft", meta_data=OPT_IN, status="processing"))
    h.settle()
    stale = {**paid, "status": "checkout-draft", "date_modified_gmt": "2025-11-03T15:00:00"}
    store.deliver("order.updated", stale)  # delivered late, out of order
    h.settle()
    assert _one(h, Cart).status == "ordered"
    with h.session() as s:
        assert s.scalar(select(func.count()).select_from(FlowRun)) == 0


def test_an_unusable_billing_phone_is_reported_on_the_order_and_skipped(woo):
    h, store = woo
    no_phone = {**order("order_checkout_draft")["billing"], "phone": ""}  # not typed yet: nothing to report
    store.put_order(order("order_checkout_draft", billing=no_phone, meta_data=OPT_IN))
    h.settle()
    assert store.private_notes(5124) == []
    h.clock.advance(timedelta(seconds=20))
    billing = {**order("order_checkout_draft")["billing"], "phone": "call me"}
    store.put_order(order("order_checkout_draft", billing=billing, meta_data=OPT_IN))
    h.settle()
    cart = _one(h, Cart)
    assert cart.status == "not_contactable" and cart.contact_id is None
    [note] = store.private_notes(5124)
    assert note.startswith("WhatsApp: no WhatsApp reminder for this order:") and "call me" not in note
    store.put_order(order("order_checkout_draft", billing=billing, meta_data=OPT_IN))  # saved again: no new note
    h.settle()
    assert len(store.private_notes(5124)) == 1
    h.at(DRAFT_AT + timedelta(hours=2))
    assert h.sandbox.sent == []


def test_the_authorize_flow_stores_the_keys_it_is_sent_and_registers_the_webhooks(tmp_path):
    import httpx

    h = Harness(tmp_path, start=DRAFT_AT)
    h.rt.settings = replace(h.rt.settings, public_url=h.server.url)
    store = WooStore(h.clock)  # no keys yet: the authorize flow makes them
    try:
        # nobody starts an install without an admin's invitation (it once connected any URL given)
        assert h.http.get("/woocommerce/install", params={"store": store.url}).status_code == 401
        assert h.http.get("/woocommerce/install", params={"store": store.url, "invite": "guess"}).status_code == 401
        from bridge.woocommerce_connect import INVITE_TTL, invite

        link = invite(h.rt, store.url)
        start = h.http.get(link.removeprefix(h.server.url))
        assert start.status_code == 302 and start.headers["Location"].startswith(f"{store.url}/wc-auth/v1/authorize?")
        approved = httpx.get(start.headers["Location"], timeout=30)  # the admin approves in the store
        assert approved.status_code == 302
        assert approved.headers["Location"].startswith(f"{h.server.url}/woocommerce/installed?success=1")
        h.settle()  # the webhooks are registered by a job
        [sent] = store.authorized
        assert sent["callback_status"] == 200 and sent["key_permissions"] == "read_write"
        inst = _one(h, Installation)
        creds = h.rt.sealer.open(inst.credentials)
        assert (creds["consumer_key"], creds["consumer_secret"]) == (sent["consumer_key"], sent["consumer_secret"])
        assert sent["consumer_secret"] not in inst.credentials
        assert len(store.webhooks) == 4 and [status for _, status in store.pings] == [200] * 4
        assert h.http.get(approved.headers["Location"]).status_code == 200
        # keys posted by anyone else (a state this bridge did not issue), or the same invitation
        # used twice, are refused
        forged = dict(sent, user_id=sent["user_id"].rpartition("|")[0] + "|" + "0" * 32)
        assert h.http.post("/woocommerce/callback", json=forged).status_code == 400
        replayed = h.http.post("/woocommerce/callback", json=sent)
        assert replayed.status_code == 400 and "not an invitation" in replayed.text
        assert h.http.post("/woocommerce/callback", content=b"nope").status_code == 400
        # an invitation expires
        late = invite(h.rt, store.url)
        h.clock.advance(INVITE_TTL + timedelta(seconds=1))
        assert h.http.get(late.removeprefix(h.server.url)).status_code == 401
        # outside the sandbox the store must be HTTPS
        h.rt.settings = replace(h.rt.settings, sandbox=False)
        with pytest.raises(PayloadError, match="not HTTPS"):
            invite(h.rt, store.url)
    finally:
        store.close()
        h.close()


def test_connect_from_the_command_line_with_keys_or_through_the_store(tmp_path):
    from click.testing import CliRunner

    from bridge.cli import main

    h = Harness(tmp_path, start=DRAFT_AT)
    h.rt.settings = replace(h.rt.settings, public_url=h.server.url)
    store = WooStore(h.clock, keys={"ck_test": "cs_test"})
    try:
        approve = CliRunner().invoke(main, ["connect", "woocommerce", "--url", store.url])
        assert approve.exit_code == 0 and f"/woocommerce/install?store={store.url}&invite=" in approve.output
        wrong = CliRunner().invoke(main, ["connect", "woocommerce", "--url", store.url, "--key", "ck_test",
                                          "--secret", "cs_wrong"])
        assert wrong.exit_code == 1 and "401" in wrong.output and "Traceback" not in wrong.output
        with h.session() as s:
            # a wrong key stores nothing (the invitation above left only a pending row, no keys)
            assert s.scalar(select(func.count()).select_from(Installation).where(Installation.status != "pending")) == 0
            assert s.scalar(select(Installation.credentials)) is None
        done = CliRunner().invoke(main, ["connect", "woocommerce", "--url", store.url, "--key", "ck_test",
                                         "--secret", "cs_test", "--bookings"])
        assert done.exit_code == 0, done.output
        assert "5 webhooks deliver to" in done.output and "action.woocommerce_new_booking" in done.output
    finally:
        store.close()
        h.close()


def test_an_unpaid_order_the_shop_cancels_gets_no_reminder_with_a_dead_link(woo):
    h, store = woo
    store.put_order(order("order_created", meta_data=OPT_IN))  # pending, classic checkout
    h.settle()
    h.clock.advance(timedelta(minutes=59))  # WooCommerce's "hold stock" ran out: cancelled unpaid
    store.put_order(order("order_created", meta_data=OPT_IN, status="cancelled"))
    h.settle()
    assert _one(h, Cart).status == "completed" and _one(h, FlowRun).status == "cancelled"
    h.at(h.clock.now() + timedelta(hours=3))
    assert h.sandbox.sent == []


def test_webhooks_disabled_after_failures_are_revived_and_what_they_missed_is_read_back(woo):
    h, store = woo
    h.server.stop()  # the bridge is down: WooCommerce counts failures, then disables the webhook
    for minute in range(6):
        h.clock.advance(timedelta(minutes=1))
        store.put_order(order("order_checkout_draft", meta_data=OPT_IN))
    hook = next(w for w in store.webhooks.values() if w["topic"] == "order.updated")
    assert hook["status"] == "disabled" and [d["status"] for d in store.deliveries] == [0] * 6
    h.server = ServerThread(create_app(h.rt), port=int(h.server.url.rsplit(":", 1)[1]))  # back up
    h.sweep()
    assert hook["status"] == "active" and hook["failure_count"] == 0
    assert _one(h, Cart).status == "open" and _one(h, FlowRun).step == "wait_for_abandonment"
