"""The stored envelope text is the envelope, exactly, whatever the webhook carried."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.whatsapp.events import envelope_text, parse_webhook

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "whatsapp"


WEBHOOKS = [p for p in sorted(FIXTURES.glob("*.json"))
            if json.loads(p.read_bytes()).get("object") == "whatsapp_business_account"]


@pytest.mark.parametrize("path", WEBHOOKS, ids=lambda p: p.stem)
def test_every_fixture_envelope_round_trips(path):
    updates = parse_webhook(path.read_bytes())
    assert updates
    for update in updates:
        assert json.loads(envelope_text(update.envelope)) == update.envelope


@pytest.mark.parametrize("odd", [2**70, -(2**65), "\ud800 lone surrogate", "naïve – ✓ 😀"])
def test_values_orjson_refuses_still_round_trip(odd):
    envelope = {"object": "whatsapp_business_account", "entry": [{"id": "1", "odd": odd}]}
    assert json.loads(envelope_text(envelope)) == envelope
