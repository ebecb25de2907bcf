"""A harness plus the local Shopify Admin API emulator, wired together the way a deployment is:
the bridge's Shopify settings (client id and secret, pinned API version, API base) point at it."""

from __future__ import annotations

import dataclasses
from urllib.parse import parse_qs, urlparse

from tests.emulators.shopify import ShopifyEmulator, create_shopify_app
from tests.harness import SHOP_SECRET, Harness
from bridge.servers import ServerThread
from connectors.shopify.install import sign_query

SHOP = "lumen-tea-co.myshopify.com"
CLIENT_ID = "test-client-id"


class ShopifySetup:
    def __init__(self, h: Harness) -> None:
        self.h = h
        self.emu = ShopifyEmulator(shop=SHOP, client_id=CLIENT_ID, client_secret=SHOP_SECRET)
        self.server = ServerThread(create_shopify_app(self.emu))
        h.rt.settings = dataclasses.replace(h.rt.settings, shopify_client_id=CLIENT_ID,
                                            shopify_api_base=self.server.url, public_url=h.server.url)

    def signed(self, **params: str) -> dict[str, str]:
        """Query parameters as Shopify sends them: a timestamp (now) and the hmac."""
        params = {"timestamp": str(int(self.h.clock.now().timestamp())), **params}
        return {**params, "hmac": sign_query(params, SHOP_SECRET)}

    def oauth_install(self, shop: str = SHOP):
        """The whole OAuth dance: install request, the merchant approves, the callback."""
        start = self.h.http.get("/shopify/install", params=self.signed(shop=shop))
        assert start.status_code == 302, start.text
        target = urlparse(start.headers["location"])
        query = {k: v[0] for k, v in parse_qs(target.query).items()}
        code = self.emu.grant(query["scope"])
        return self.h.http.get("/shopify/callback", params=self.signed(shop=shop, code=code, state=query["state"]))

    def stop(self) -> None:
        self.server.stop()
