"""With a real WhatsApp number, settings whose defaults are the sandbox's public values must be
set: a bridge that would check signatures against "sandbox-app-secret" refuses to start."""

from __future__ import annotations

import pytest

from bridge.config import LIVE_REQUIRED, Settings, SettingsError

LIVE = {"WHATSAPP_ACCESS_TOKEN": "a-real-token", "WHATSAPP_APP_SECRET": "own-app-secret",
        "WHATSAPP_VERIFY_TOKEN": "own-verify-token", "WHATSAPP_PHONE_NUMBER_ID": "106000000000099",
        "REPLYFLOW_ACTION_SECRET": "own-action-secret", "REPLYFLOW_ERASE_SALT": "own-erase-salt"}


def test_live_settings_with_everything_set_start():
    settings = Settings.from_env(LIVE)
    assert not settings.sandbox
    assert settings.whatsapp_app_secrets == ("own-app-secret",)
    assert (settings.action_secret, settings.erase_salt) == ("own-action-secret", "own-erase-salt")


@pytest.mark.parametrize("name", LIVE_REQUIRED)
@pytest.mark.parametrize("value", [None, "", "  "])
def test_each_missing_one_is_named(name, value):
    env = {k: v for k, v in LIVE.items() if k != name}
    if value is not None:
        env[name] = value
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert name in str(caught.value) and "sandbox" in str(caught.value)
    others = set(LIVE_REQUIRED) - {name}
    assert not any(other in str(caught.value) for other in others)


def test_the_sandbox_keeps_its_defaults():
    settings = Settings.from_env({})
    assert settings.sandbox and settings.whatsapp_app_secrets == ("sandbox-app-secret",)
