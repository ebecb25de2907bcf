"""Connecting a platform holds no database transaction while the platform answers: the HubSpot
OAuth callback (a web request) and ``replyflow connect hubspot --token`` make their HTTP calls
first, then store the result in a short transaction; so do the Shopify callback and ``replyflow
connect shopify``. A WooCommerce webhook registration, whose
calls are made with no transaction open either, records its webhooks only on the installation as
it read it: one uninstalled or given new keys meanwhile is left as it is; a reconciliation of a
store uninstalled meanwhile ends without an error.

The probe listens to every SQLAlchemy pool (the ``checkout``/``checkin`` events of the ``Pool``
class, public API), so it also sees the engine the CLI builds for itself; while the emulator
answers a call it notes the connections any other thread holds and, on PostgreSQL, the backends
"idle in transaction". Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from bridge import woocommerce_sync
from bridge.cli import main
from bridge.hubspot_oauth import invite
from bridge.servers import ServerThread
from bridge.woocommerce_connect import connect, register, store_keys
from connectors.woocommerce.events import account_of
from core.installations import uninstall
from core.store import Database, session_scope
from core.store.models import Installation
from tests.emulators.hubspot import HubSpotEmulator, create_hubspot_app
from tests.emulators.woocommerce import WooStore
from tests.harness import Harness
from tests.tx_probe import Probe
from tests.shopify_env import SHOP, ShopifySetup

PUBLIC = "https://bridge.example.test"
TOKEN = "pat-na1-test-install"
KEY = "a-test-sealing-key-that-is-long-enough"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    return request.getfixturevalue("postgres_url") if request.param == "postgres" else None


@pytest.fixture
def portal(database_url):
    emu = HubSpotEmulator(private_tokens={TOKEN})
    server = ServerThread(create_hubspot_app(emu))
    emu.url = server.url
    probe = Probe(database_url)
    emu.on_call.append(probe)
    yield emu, probe
    probe.close()
    server.stop()


# ---------------------------------------------------------------- HubSpot


def test_the_hubspot_oauth_callback_calls_hubspot_with_no_transaction_open(tmp_path, database_url, portal):
    emu, probe = portal
    emu.private_tokens.clear()
    h = Harness(tmp_path, database_url=database_url,
                overrides=dict(hubspot_client_secrets=(emu.client_secret,), public_url=PUBLIC,
                               hubspot_client_id=emu.client_id, hubspot_api_base=emu.url))
    try:
        emu.now = lambda: h.clock.now().timestamp()
        start = h.http.get("/hubspot/install", params={"invite": invite(h.rt).rsplit("=", 1)[1]})
        assert start.status_code == 302
        state = dict(p.split("=", 1) for p in start.headers["location"].split("?", 1)[1].split("&"))["state"]
        code = emu.issue_code(f"{PUBLIC}/hubspot/oauth/callback")
        done = h.http.get("/hubspot/oauth/callback", params={"code": code, "state": state},
                          headers={"Cookie": f"replyflow_hubspot_state={state}"})
        assert done.status_code == 200, done.text
        assert done.json()["connected"] == str(emu.portal_id)
        assert set(done.json()["created_properties"]) == {"whatsapp_marketing_opt_in", "whatsapp_last_reply_at",
                                                          "whatsapp_conversation_url"}
        with h.session() as s:
            inst = s.scalar(select(Installation).where(Installation.platform == "hubspot"))
            assert (inst.account, inst.status, inst.config["auth"]) == (str(emu.portal_id), "active", "oauth")
            assert h.rt.sealer.open(inst.credentials)["refresh_token"]
    finally:
        h.close()
    assert probe.held_during("/oauth/v1/token") == []  # the code exchange
    assert probe.held_during("/account-info/") == []
    assert probe.held_during("/crm/v3/properties/contacts") == []  # checked, then created
    assert ("POST", "/crm/v3/properties/contacts") in [c[:2] for c in probe.calls]


def test_connect_hubspot_with_a_token_calls_hubspot_with_no_transaction_open(tmp_path, database_url, portal):
    emu, probe = portal
    url = database_url or f"sqlite:///{tmp_path / 'cli.db'}"
    env = {"DATABASE_URL": url, "HUBSPOT_API_BASE": emu.url, "REPLYFLOW_SECRET_KEY": KEY,
           "WHATSAPP_ACCESS_TOKEN": "", "REDIS_URL": ""}
    result = CliRunner().invoke(main, ["connect", "hubspot", "--token", TOKEN], env=env)
    assert result.exit_code == 0, result.output
    assert f"Connected HubSpot portal {emu.portal_id}" in result.output
    assert probe.held_during("/account-info/") == []
    assert probe.held_during("/crm/v3/properties/contacts") == []
    assert ("POST", "/crm/v3/properties/contacts") in [c[:2] for c in probe.calls]
    db = Database(url)
    with session_scope(db) as s:
        inst = s.scalar(select(Installation).where(Installation.platform == "hubspot"))
        assert (inst.account, inst.status, inst.config["auth"]) == (str(emu.portal_id), "active", "private_app")
    db.dispose()
    refused = CliRunner().invoke(main, ["connect", "hubspot", "--token", "pat-wrong"], env=env)
    assert refused.exit_code == 1 and "401" in refused.output


# ---------------------------------------------------------------- WooCommerce


@pytest.fixture
def shop(tmp_path, database_url):
    h = Harness(tmp_path, database_url=database_url)
    h.rt.settings = replace(h.rt.settings, public_url=h.server.url)  # the store pings the new webhooks
    store = WooStore(h.clock, keys={"ck_test": "cs_test"})
    yield h, store, account_of(store.url)
    store.close()
    h.close()


def _installation(h: Harness, account: str) -> Installation:
    with h.session() as s:
        return s.scalar(select(Installation).where(Installation.platform == "woocommerce",
                                                   Installation.account == account))


def test_a_store_uninstalled_while_its_webhooks_are_registered_stays_uninstalled(shop):
    h, store, account = shop
    store_keys(h.rt, store.url, "ck_test", "cs_test")

    def uninstall_now(method: str, path: str) -> None:  # the admin disconnects the store meanwhile
        if path.endswith("/webhooks") and method == "GET":
            with h.session() as s:
                uninstall(s, s.get(Installation, _installation(h, account).id), h.clock.now())

    store.on_call.append(uninstall_now)
    ids = register(h.rt, account)
    assert len(ids) == len(store.webhooks)  # made on the store: its deliveries are ignored once uninstalled
    inst = _installation(h, account)
    assert (inst.status, inst.credentials) == ("uninstalled", None)  # not reactivated, its keys not put back
    assert "webhooks" not in inst.config or inst.config["webhooks"] == {}


def test_keys_replaced_while_the_webhooks_are_registered_are_kept(shop):
    h, store, account = shop
    store_keys(h.rt, store.url, "ck_test", "cs_test")
    store.keys["ck_new"] = "cs_new"
    renewed: list[str] = []

    def connect_again(method: str, path: str) -> None:  # the admin connects the store again with new keys
        if path.endswith("/webhooks") and method == "GET" and not renewed:
            renewed.append(store_keys(h.rt, store.url, "ck_new", "cs_new"))

    store.on_call.append(connect_again)
    register(h.rt, account)
    assert renewed
    inst = _installation(h, account)
    assert inst.status == "active"
    assert h.rt.sealer.open(inst.credentials)["consumer_key"] == "ck_new"  # the old registration did not undo them
    store.on_call.clear()
    ids = register(h.rt, account)  # the new keys' own registration records the webhooks
    assert _installation(h, account).config["webhooks"] == ids


def test_a_registration_records_the_webhooks_when_nothing_changed_meanwhile(shop):
    h, store, account = shop
    ids = connect(h.rt, store.url, "ck_test", "cs_test")
    inst = _installation(h, account)
    assert inst.status == "active" and inst.config["webhooks"] == ids == {h["topic"]: i for i, h in store.webhooks.items()}



def test_a_store_uninstalled_while_it_is_reconciled_ends_the_pass_without_an_error(shop):
    h, store, account = shop
    connect(h.rt, store.url, "ck_test", "cs_test")

    def uninstall_now(method: str, path: str) -> None:
        if path.endswith("/orders"):
            with h.session() as s:
                uninstall(s, s.get(Installation, _installation(h, account).id), h.clock.now())

    store.on_call.append(uninstall_now)
    counts = woocommerce_sync.reconcile(h.rt, account)
    assert counts["malformed"] == 0
    inst = _installation(h, account)
    assert (inst.status, inst.credentials) == ("uninstalled", None) and "reconciled_ok_at" not in inst.config


# ---------------------------------------------------------------- Shopify


@pytest.fixture
def shopify(tmp_path, database_url):
    h = Harness(tmp_path, database_url=database_url)
    setup = ShopifySetup(h)
    probe = Probe(database_url)
    setup.emu.on_call.append(probe)
    yield setup, probe
    probe.close()
    setup.stop()
    h.close()


def test_the_shopify_oauth_callback_calls_shopify_with_no_transaction_open(shopify):
    setup, probe = shopify
    response = setup.oauth_install()
    assert response.status_code == 200, response.text
    assert probe.held_during("/admin/oauth/access_token") == []
    assert probe.held_during("/graphql.json") == []  # the token checked, the subscriptions listed and created
    assert setup.emu.calls.count("webhookSubscriptionCreate") >= 1


def test_connect_shopify_with_a_token_calls_shopify_with_no_transaction_open(shopify):
    setup, probe = shopify
    setup.emu.add_token("shpat_custom_app_token_1")
    result = CliRunner().invoke(main, ["connect", "shopify", "--shop", SHOP, "--token", "shpat_custom_app_token_1"])
    assert result.exit_code == 0, result.output
    setup.emu.drop_subscription(sorted(setup.emu.topics())[0])
    fixed = CliRunner().invoke(main, ["connect", "shopify", "--check", "--fix"])
    assert fixed.exit_code == 0, fixed.output
    assert probe.held_during("/graphql.json") == []
    assert setup.emu.calls.count("webhookSubscriptionCreate") >= 2  # the connect's and the fix's
