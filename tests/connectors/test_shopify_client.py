"""The Shopify GraphQL client against the Admin API emulator: cost-based throttling is waited out
as the answer says (restoreRate, currentlyAvailable), errors are classified."""

from __future__ import annotations

import pytest

from bridge.servers import ServerThread
from connectors.shopify.client import ShopifyClient, UserErrors, exchange_code, throttle_wait
from core.errors import PermanentError, RetryableError
from tests.emulators.shopify import RESTORE_RATE, ShopifyEmulator, create_shopify_app

SHOP = "lumen-tea-co.myshopify.com"


@pytest.fixture
def emu():
    emulator = ShopifyEmulator(shop=SHOP)
    emulator.add_token("shpat_ok")
    with ServerThread(create_shopify_app(emulator)) as server:
        emulator.url = server.url
        yield emulator


def _client(emu, slept, **kw) -> ShopifyClient:
    return ShopifyClient(shop=SHOP, token=kw.pop("token", "shpat_ok"), api_version="2025-10", base_url=emu.url,
                         sleep=slept.append, **kw)


def test_throttled_calls_wait_what_the_cost_says_then_succeed(emu):
    slept: list[float] = []
    emu.throttle(2)
    with _client(emu, slept) as client:
        client.tags_add("gid://shopify/Order/6100000000051", ["whatsapp-recovered"])
        assert client.last_cost["throttleStatus"]["restoreRate"] == RESTORE_RATE
    # requested 10 points, 4 available, 100 restored per second: 0.06 s each time
    assert slept == [pytest.approx(0.06), pytest.approx(0.06)]
    assert emu.calls == ["tagsAdd"] * 3
    assert emu.tags == {"gid://shopify/Order/6100000000051": {"whatsapp-recovered"}}


def test_a_wait_longer_than_allowed_is_a_retryable_error_with_the_wait(emu):
    slept: list[float] = []
    emu.throttle(100)
    with _client(emu, slept, max_wait=0) as client, pytest.raises(RetryableError) as caught:
        client.tags_add("gid://shopify/Order/1", ["x"])
    assert caught.value.retry_after == pytest.approx(0.06) and slept == []
    assert emu.tags == {}


def test_throttle_wait_reads_the_cost_extension():
    ext = {"cost": {"requestedQueryCost": 502, "throttleStatus": {"currentlyAvailable": 2, "restoreRate": 50}}}
    assert throttle_wait(ext) == pytest.approx(10.0)
    assert throttle_wait({}) == 1.0


def test_a_rejected_token_is_permanent(emu):
    with _client(emu, [], token="shpat_revoked") as client, pytest.raises(PermanentError) as caught:
        client.shop_name()
    assert "401" in str(caught.value) and not isinstance(caught.value, RetryableError)


def test_user_errors_are_permanent_and_say_what(emu):
    with _client(emu, []) as client, pytest.raises(UserErrors) as caught:
        client.subscribe("NOT_A_TOPIC", "https://bridge.example/webhooks/shopify")
    assert "topic" in str(caught.value)


def test_an_unreachable_shop_is_retryable():
    with ShopifyClient(shop=SHOP, token="t", api_version="2025-10", base_url="http://127.0.0.1:9") as client:
        with pytest.raises(RetryableError):
            client.shop_name()


def test_code_exchange_checks_the_client_credentials(emu):
    code = emu.grant("read_orders")
    with pytest.raises(PermanentError):
        exchange_code(SHOP, code, client_id="test-client-id", client_secret="wrong", base_url=emu.url)
    token, scope = exchange_code(SHOP, code, client_id="test-client-id", client_secret="test-shopify-client-secret",
                                 base_url=emu.url)
    assert token.startswith("shpat_") and scope == "read_orders" and token in emu.tokens
    with pytest.raises(PermanentError):  # a code works once
        exchange_code(SHOP, code, client_id="test-client-id", client_secret="test-shopify-client-secret",
                      base_url=emu.url)
