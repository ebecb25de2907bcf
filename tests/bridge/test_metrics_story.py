"""A cart story played through the bridge with the injected clock, then every figure of the report
checked exactly: the numbers come from the records the bridge wrote, nothing else."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from core.metrics import report
from core.metrics.figures import Figures
from core.store.models import Conversation, FlowRun, Workspace
from tests.harness import Harness

WA_ID, NAME = "15550002222", "Maya Lindqvist"


def test_every_figure_of_a_played_story(bridge: Harness):
    h = bridge
    assert h.shopify("checkouts_create").status_code == 200
    with h.session() as s:
        wake_at = s.scalars(select(FlowRun)).one().wake_at
    h.at(wake_at)  # the reminder goes
    h.sandbox.deliver_statuses("read")
    h.settle()
    h.clock.advance(timedelta(minutes=2))
    h.sandbox.customer_sends(WA_ID, NAME, button=("cart_help", "I need help"))  # -> an agent
    h.settle()
    with h.session() as s:
        conv_id = s.scalars(select(Conversation)).one().id
    h.clock.advance(timedelta(minutes=2))
    assert h.api("POST", f"/conversations/{conv_id}/messages", json={"text": "Sam here.", "agent": "sam"}).status_code == 202
    h.settle()
    h.sandbox.deliver_statuses("delivered")
    h.settle()
    h.at(h.clock.now() + timedelta(hours=30))
    assert h.shopify("orders_create").status_code == 200  # the cart is recovered

    with h.session() as s:
        ws = s.scalars(select(Workspace)).one()
        week, hour = report(s, ws.id), report(s, ws.id, window=timedelta(hours=1))
    expected = dict(runs=1, contacted=1, sent=1, delivered=1, read=1, replied=1, median_reply_seconds=120.0,
                    mean_messages=3.0, mean_minutes=4.0, handoffs=1, opt_outs=0, converted=1, carts_recovered=1,
                    bookings_confirmed=0, orders=1, revenue={"USD": Decimal("112.00")})
    assert week.flows == (Figures(key="cart_recovery", **expected),)
    assert week.templates == (Figures(key="cart_reminder [en_US]", **expected),)
    assert week.steps == (Figures(key="cart_recovery/remind", **expected),)
    assert (week.holdouts, week.variants) == ((), ())
    [day] = week.days
    assert (day.day, day.sent, day.replied, day.runs, day.converted) == (wake_at.date(), 1, 1, 1, 1)
    # within one hour of the start nothing was ordered yet, and the run started an hour before its reminder
    assert hour.flows[0].converted == 0 and hour.flows[0].revenue == {}
