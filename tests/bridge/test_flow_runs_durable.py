"""Waits survive a restart; runs keep the flow version they started with; trigger filters."""

from __future__ import annotations

from datetime import timedelta
from importlib import resources

import pytest
from sqlalchemy import select

from core.errors import FlowDefinitionError
from core.store.models import FlowRun
from tests.harness import Harness, triggered_at

SHIPPED = (resources.files("core.flows") / "shipped" / "cart_recovery.yaml").read_text()


def _flows_dir(tmp_path, text: str):
    folder = tmp_path / "flows"
    folder.mkdir(exist_ok=True)
    (folder / "cart_recovery.yaml").write_text(text)
    return str(folder)


def test_a_restart_in_the_middle_of_a_wait_loses_nothing(tmp_path):
    first = Harness(tmp_path)
    first.shopify("checkouts_create")
    first.close()  # everything stops: the process, the queue, the timers in memory
    second = Harness(tmp_path)
    try:
        second.at(triggered_at("checkouts_create") + timedelta(hours=1))
        assert [m.body["template"]["name"] for m in second.sandbox.sent] == ["cart_reminder"]
    finally:
        second.close()


def test_runs_keep_the_version_they_started_with(tmp_path):
    first = Harness(tmp_path)
    first.shopify("checkouts_create")
    first.close()
    v3 = SHIPPED.replace("version: 2", "version: 3").replace("name: cart_reminder\n", "name: cart_reminder_2\n", 1)
    second = Harness(tmp_path, flows_dir=_flows_dir(tmp_path, v3))
    try:
        second.at(triggered_at("checkouts_create") + timedelta(hours=1))
        assert [m.body["template"]["name"] for m in second.sandbox.sent] == ["cart_reminder"]  # v2's step
        with second.session() as s:
            assert s.scalars(select(FlowRun.flow_version)).one() == 2
        second.shopify("checkouts_create", headers={"X-Shopify-Webhook-Id": "new-cart"},
                       body=b'{"token":"newcart","total_price":"9.00","currency":"USD","phone":"+15550005555",'
                            b'"buyer_accepts_sms_marketing":true,"sms_marketing_phone":"+15550005555",'
                            b'"abandoned_checkout_url":"https://lumen-tea-co.myshopify.com/r/newcart"}')
        with second.session() as s:
            assert s.scalars(select(FlowRun.flow_version).order_by(FlowRun.id.desc())).first() == 3
    finally:
        second.close()


def test_a_changed_flow_must_carry_a_new_version(tmp_path):
    Harness(tmp_path).close()
    edited = SHIPPED.replace("timeout: 24h", "timeout: 12h", 1)
    with pytest.raises(FlowDefinitionError, match="give the changed flow a new version number"):
        Harness(tmp_path, flows_dir=_flows_dir(tmp_path, edited))


def test_trigger_filter_on_the_cart_total(tmp_path):
    filtered = SHIPPED.replace("  reentry: restart_wait", "  reentry: restart_wait\n  filters:\n"
                               "    - {field: cart.total, at_least: 100}").replace("version: 2", "version: 3")
    h = Harness(tmp_path, flows_dir=_flows_dir(tmp_path, filtered))
    try:
        h.shopify("checkouts_create")  # 82.00: below the filter
        with h.session() as s:
            assert s.scalars(select(FlowRun)).all() == []
        h.clock.set(triggered_at("checkouts_update"))
        h.shopify("checkouts_update")  # 112.00: now it qualifies
        with h.session() as s:
            assert s.scalars(select(FlowRun.flow_version)).one() == 3
    finally:
        h.close()
