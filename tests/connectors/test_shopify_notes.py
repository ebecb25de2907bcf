"""The Shopify writer against the Admin API emulator: where a line goes (the order, else this shop's
customer), what it adds, and per-task results for what cannot be written."""

from __future__ import annotations

import pytest

from bridge.servers import ServerThread
from connectors.base import WriteTask
from connectors.shopify.client import ShopifyClient
from connectors.shopify.notes import ShopifyWriter, target_of
from tests.emulators.shopify import ShopifyEmulator, create_shopify_app

SHOP = "lumen-tea-co.myshopify.com"


def _task(i: int, kind: str = "handoff", *, ref: str | None = f"{SHOP}:7700000000101", order: str | None = None,
          text: str = "Handed off to an agent: asked for help") -> WriteTask:
    return WriteTask(id=i, kind=kind, key=f"message:{i}", account=SHOP, contact_ref=ref, external_id=None,
                     conversation_url=f"https://replyflow.example/inbox/conversations/{i}", contact={},
                     payload={"text": text, "cart": {"order_id": order} if order else None,
                              "data": {"outcome": "cart_recovered", "order_id": order} if kind == "outcome" else {}})


@pytest.fixture
def writer():
    emu = ShopifyEmulator(shop=SHOP)
    emu.add_token("shpat_ok")
    with ServerThread(create_shopify_app(emu)) as server:
        client = ShopifyClient(shop=SHOP, token="shpat_ok", api_version="2025-10", base_url=server.url, max_wait=0)
        w = ShopifyWriter(client, SHOP)
        w.emu = emu
        yield w
        w.close()


def test_target_is_the_order_else_this_shops_customer():
    assert target_of(_task(1, order="6100000000051"), SHOP) == "gid://shopify/Order/6100000000051"
    assert target_of(_task(1), SHOP) == "gid://shopify/Customer/7700000000101"
    assert target_of(_task(1, ref="harbor-goods.myshopify.com:8800000000202"), SHOP) is None  # another shop's
    assert target_of(_task(1, ref=None), SHOP) is None


def test_each_task_gets_its_own_result(writer):
    tasks = [_task(1), _task(2, ref=None), _task(3, "outcome", order="6100000000051",
                                                   text="Order #1051 placed: cart recovered (112.00 USD)")]
    results = writer.write(tasks)
    assert [(r.task_id, r.outcome, r.external_id) for r in results] == [
        (1, "done", "gid://shopify/Customer/7700000000101"), (2, "done", None),
        (3, "done", "gid://shopify/Order/6100000000051")]
    assert "no order or customer" in results[1].detail
    assert writer.emu.tags == {"gid://shopify/Customer/7700000000101": {"whatsapp-handoff"},
                               "gid://shopify/Order/6100000000051": {"whatsapp-recovered"}}


def test_a_long_line_is_cut_to_one_short_line(writer):
    writer.write([_task(1, text="Handed off: " + "very long reason\n" * 40)])
    value = writer.emu.metafields["gid://shopify/Customer/7700000000101"]["replyflow.whatsapp"]["value"]
    assert len(value) <= 240 and "\n" not in value and value.endswith("…")


def test_throttling_hands_the_rest_of_the_batch_back_with_the_wait(writer):
    writer.emu.throttle(1)
    results = writer.write([_task(1), _task(2)])
    assert [(r.outcome, r.retry_after) for r in results] == [("retry", pytest.approx(0.06))] * 2
    assert writer.emu.tags == {}


def test_a_rejected_token_fails_each_task_with_the_reason(writer):
    writer.emu.tokens.clear()
    results = writer.write([_task(1), _task(2)])
    assert [r.outcome for r in results] == ["failed", "failed"] and "access token rejected" in results[0].detail
