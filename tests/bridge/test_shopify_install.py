"""Installing the Shopify app through the real endpoints against the Admin API emulator: the
install request's checks, the authorize redirect, the callback's nonce and code exchange, the
sealed token and the webhook subscriptions; and `replyflow connect shopify` (token, --check, --fix)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from bridge.cli import main
from connectors.shopify.install import SCOPES, TOPICS
from core.installations import info_of
from core.store.models import Installation
from tests.harness import Harness
from tests.shopify_env import CLIENT_ID, SHOP, ShopifySetup


@pytest.fixture
def shop(tmp_path):
    h = Harness(tmp_path)
    setup = ShopifySetup(h)
    yield setup
    setup.stop()
    h.close()


def _installation(setup: ShopifySetup) -> Installation | None:
    with setup.h.session() as s:
        inst = s.scalar(select(Installation).where(Installation.platform == "shopify", Installation.account == SHOP))
        if inst is not None:
            s.expunge(inst)
        return inst


def test_install_redirects_to_authorize_with_the_scopes_and_a_nonce(shop):
    response = shop.h.http.get("/shopify/install", params=shop.signed(shop=SHOP))
    assert response.status_code == 302
    url = urlparse(response.headers["location"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert url.path == "/admin/oauth/authorize" and f"{url.scheme}://{url.netloc}" == shop.server.url
    assert query["client_id"] == CLIENT_ID
    assert query["scope"].split(",") == list(SCOPES)
    assert {s.split("_", 1)[1] for s in SCOPES} == {"orders", "customers"}  # checkouts come with orders
    assert query["redirect_uri"] == f"{shop.h.server.url}/shopify/callback"
    assert len(query["state"]) >= 24
    stored = _installation(shop)
    assert stored.status == "pending" and query["state"] not in str(stored.config)  # only its hash is kept


@pytest.mark.parametrize("bad_shop", ["evil.com", "lumen.myshopify.com.evil.com", "a/b.myshopify.com",
                                      "https://lumen.myshopify.com", "-x.myshopify.com", ""])
def test_install_refuses_a_shop_that_is_not_myshopify(shop, bad_shop):
    response = shop.h.http.get("/shopify/install", params=shop.signed(shop=bad_shop))
    assert response.status_code == 400 and "myshopify.com" in response.text


def test_install_refuses_a_bad_or_stale_hmac(shop):
    params = shop.signed(shop=SHOP)
    assert shop.h.http.get("/shopify/install", params={**params, "hmac": "0" * 64}).status_code == 401
    assert shop.h.http.get("/shopify/install", params={**params, "extra": "1"}).status_code == 401
    assert shop.h.http.get("/shopify/install", params={"shop": SHOP, "timestamp": params["timestamp"]}).status_code == 401
    old = str(int((shop.h.clock.now() - timedelta(hours=1)).timestamp()))
    stale = shop.signed(shop=SHOP, timestamp=old)
    response = shop.h.http.get("/shopify/install", params=stale)
    assert response.status_code == 401 and "timestamp" in response.text
    assert _installation(shop) is None


def test_a_fresh_install_seals_the_token_and_registers_every_subscription(shop):
    response = shop.oauth_install()
    assert response.status_code == 200, response.text
    assert f"{len(TOPICS)} of {len(TOPICS)}" in response.text
    assert shop.emu.topics() == set(TOPICS.values())
    assert {s["uri"] for s in shop.emu.subscriptions.values()} == {f"{shop.h.server.url}/webhooks/shopify"}
    [token] = shop.emu.tokens
    inst = _installation(shop)
    assert inst.status == "active" and token not in inst.credentials  # sealed at rest
    assert inst.config["api_version"] == shop.h.rt.settings.shopify_api_version == "2025-10"
    assert inst.config["api_base"] == shop.server.url
    assert inst.config["write_kinds"] == ["handoff", "outcome"] and inst.config["write_all_contacts"] is False
    assert set(inst.config["webhooks"]) == set(TOPICS.values()) and "oauth_state" not in inst.config
    with shop.h.session() as s:
        assert info_of(s, "shopify", SHOP, shop.h.rt.sealer).credentials == {"access_token": token}


def test_the_callback_refuses_a_wrong_or_reused_nonce(shop):
    start = shop.h.http.get("/shopify/install", params=shop.signed(shop=SHOP))
    state = parse_qs(urlparse(start.headers["location"]).query)["state"][0]
    code = shop.emu.grant(",".join(SCOPES))
    wrong = shop.h.http.get("/shopify/callback", params=shop.signed(shop=SHOP, code=code, state="forged"))
    assert wrong.status_code == 403 and "state" in wrong.text
    # the nonce was consumed by that attempt: the right one no longer works either
    again = shop.h.http.get("/shopify/callback", params=shop.signed(shop=SHOP, code=code, state=state))
    assert again.status_code == 403
    assert shop.emu.tokens == set() and _installation(shop).status == "pending"


def test_the_callback_refuses_an_expired_nonce_and_a_bad_hmac(shop):
    start = shop.h.http.get("/shopify/install", params=shop.signed(shop=SHOP))
    state = parse_qs(urlparse(start.headers["location"]).query)["state"][0]
    code = shop.emu.grant(",".join(SCOPES))
    params = shop.signed(shop=SHOP, code=code, state=state)
    assert shop.h.http.get("/shopify/callback", params={**params, "code": "other"}).status_code == 401
    shop.h.clock.advance(timedelta(minutes=11))
    late = shop.h.http.get("/shopify/callback", params=shop.signed(shop=SHOP, code=code, state=state))
    assert late.status_code == 403 and "expired" in late.text
    assert shop.emu.tokens == set()


def test_a_code_shopify_does_not_know_is_refused(shop):
    start = shop.h.http.get("/shopify/install", params=shop.signed(shop=SHOP))
    state = parse_qs(urlparse(start.headers["location"]).query)["state"][0]
    response = shop.h.http.get("/shopify/callback", params=shop.signed(shop=SHOP, code="made-up", state=state))
    assert response.status_code == 502 and "token exchange" in response.text
    assert _installation(shop).status == "pending"


def test_connect_with_a_custom_app_token_then_check_and_fix(shop):
    shop.emu.add_token("shpat_custom_app_token_1")
    runner = CliRunner()
    result = runner.invoke(main, ["connect", "shopify", "--shop", SHOP, "--token", "shpat_custom_app_token_1"])
    assert result.exit_code == 0, result.output
    assert "connected lumen-tea-co.myshopify.com" in result.output
    assert shop.emu.topics() == set(TOPICS.values())
    assert _installation(shop).config["installed_by"] == "custom-app token"

    result = runner.invoke(main, ["connect", "shopify", "--check"])
    assert result.exit_code == 0, result.output
    assert "MISSING" not in result.output and result.output.count("registered") == len(TOPICS)

    shop.emu.drop_subscription("ORDERS_PAID")  # Shopify removed it after repeated delivery failures
    result = runner.invoke(main, ["connect", "shopify", "--check"])
    assert result.exit_code == 1
    assert "orders/paid" in result.output and "MISSING" in result.output and "--fix" in result.output
    assert "ORDERS_PAID" not in shop.emu.topics()  # --check alone changes nothing

    result = runner.invoke(main, ["connect", "shopify", "--check", "--fix"])
    assert result.exit_code == 0, result.output
    assert "registered now" in result.output and shop.emu.topics() == set(TOPICS.values())
    assert len(shop.emu.subscriptions) == len(TOPICS)  # nothing registered twice


def test_connect_refuses_a_token_shopify_rejects(shop):
    result = CliRunner().invoke(main, ["connect", "shopify", "--shop", SHOP, "--token", "shpat_wrong"])
    assert result.exit_code != 0 and "access token rejected" in result.output
    assert _installation(shop) is None


def test_check_skips_a_shop_known_only_by_its_webhooks(shop):
    shop.emu.add_token("shpat_custom_app_token_1")
    runner = CliRunner()
    assert runner.invoke(main, ["connect", "shopify", "--shop", SHOP, "--token", "shpat_custom_app_token_1"]).exit_code == 0
    assert shop.h.shopify("checkouts_update_phone_in_shipping_only",
                          headers={"X-Shopify-Shop-Domain": "harbor-goods.myshopify.com"}).status_code == 200
    result = runner.invoke(main, ["connect", "shopify", "--check"])
    assert result.exit_code == 0, result.output
    assert "harbor-goods.myshopify.com: no token" in result.output and f"{SHOP}:" in result.output
