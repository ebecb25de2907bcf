"""The install request's checks, without HTTP: Shopify's query HMAC and the shop domain."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from connectors.shopify.install import InstallError, sign_query, valid_shop, verify_query
from core.errors import SignatureError

# the example of Shopify's OAuth "verification" documentation (client secret "hush")
DOC_PARAMS = {"code": "0907a61c0c8d55e99db179b68161bc00", "shop": "some-shop.myshopify.com",
              "state": "0.6784241404160823", "timestamp": "1337178173"}
DOC_HMAC = "700e2dadb827fcc8609e9d5ce208b2e9cdaab9df07390d2cbca10d7c328fc4bf"
DOC_NOW = datetime.fromtimestamp(1337178173, tz=timezone.utc)


def test_the_documented_example_verifies():
    assert sign_query(DOC_PARAMS, "hush") == DOC_HMAC
    verify_query({**DOC_PARAMS, "hmac": DOC_HMAC}, ["hush"], DOC_NOW)
    verify_query({**DOC_PARAMS, "hmac": DOC_HMAC.upper()}, ["rotated-new", "hush"], DOC_NOW)  # during a rotation


@pytest.mark.parametrize("change", [{"state": "0.6784241404160824"}, {"hmac": "0" * 64}, {"extra": ""}])
def test_any_change_breaks_it(change):
    with pytest.raises(SignatureError):
        verify_query({**DOC_PARAMS, "hmac": DOC_HMAC, **change}, ["hush"], DOC_NOW)


def test_an_old_request_is_refused_even_when_signed():
    with pytest.raises(SignatureError, match="timestamp"):
        verify_query({**DOC_PARAMS, "hmac": DOC_HMAC}, ["hush"], DOC_NOW + timedelta(minutes=6))


def test_ampersands_and_percents_in_values_cannot_forge_another_parameter():
    honest = {"shop": "a.myshopify.com", "state": "x&timestamp=1", "timestamp": "2"}
    forged = {"shop": "a.myshopify.com", "state": "x", "timestamp": "1&timestamp=2"}
    assert sign_query(honest, "s") != sign_query(forged, "s")


@pytest.mark.parametrize("shop", ["lumen-tea-co.myshopify.com", "LUMEN.MYSHOPIFY.COM", "a1.myshopify.com"])
def test_myshopify_domains_are_accepted(shop):
    assert valid_shop(shop) == shop.lower()


@pytest.mark.parametrize("shop", ["lumen.myshopify.com.evil.com", "evil.com/lumen.myshopify.com", "myshopify.com",
                                  ".myshopify.com", "lumen.myshopify.com:443", "lumen_tea.myshopify.com",
                                  "lumen.myshopify.com\n", "xn--80ak6aa92e.com", None])
def test_anything_else_is_refused(shop):
    with pytest.raises(InstallError):
        valid_shop(shop)
