"""`replyflow connect hubspot`: a private app's token, or the address that starts the OAuth install."""

from __future__ import annotations

import contextlib
import io
import sys

import click

from bridge.cli_connect import connect

__all__ = ["connect_hubspot"]


@connect.command("hubspot")
@click.option("--token", envvar="HUBSPOT_PRIVATE_APP_TOKEN", help="A private app's access token (pat-...).")
@click.option("--oauth", is_flag=True, help="Print the address that installs the HubSpot app by OAuth instead.")
def connect_hubspot(token: str | None, oauth: bool) -> None:
    """Connect a HubSpot portal: creates the contact properties replyflow uses and stores the token sealed."""
    from sqlalchemy import select

    from connectors.hubspot import install
    from connectors.hubspot.client import API_BASE
    from core.errors import ReplyflowError, RetryableError
    from core.sealed import Sealer
    from bridge.secret_keys import sealing_keys_for
    from core.store import Database, session_scope
    from core.store.models import Workspace
    from bridge.config import Settings
    from bridge.hubspot_oauth import CALLBACK_PATH
    from bridge.runtime import ensure_defaults

    settings = Settings.from_env()
    if oauth or not token:
        if not settings.hubspot_client_id or not settings.hubspot_client_secrets:
            raise click.UsageError("give --token, or set HUBSPOT_CLIENT_ID and HUBSPOT_CLIENT_SECRET for --oauth")
        from bridge.hubspot_oauth import INVITE_TTL, invite
        from bridge.runtime import get_runtime

        link = invite(get_runtime())
        minutes = int(INVITE_TTL.total_seconds() // 60)
        click.echo(f"Open this link in a browser within {minutes} minutes (it works once) and pick the portal:\n"
                   f"  {link}\nHubSpot sends you back to {settings.public_url}{CALLBACK_PATH} (set it as the app's "
                   "redirect URL).")
        return
    from bridge.cli import note_new_database

    note_new_database(settings)
    db = Database(settings.database_url)
    try:
        db.upgrade()
        ensure_defaults(db, settings)
        with contextlib.redirect_stdout(io.StringIO()):  # the SDK prints network errors
            ready = install.prepare_private_app(token, api_base=settings.hubspot_api_base or API_BASE)
        with session_scope(db) as s:  # stored once HubSpot has answered: no transaction waits for it
            ws = s.scalar(select(Workspace).where(Workspace.slug == "default"))
            done = install.save(s, ws, ready, sealer=Sealer(sealing_keys_for(settings)), now=_now())
    except RetryableError as exc:  # network, 5xx, 429: not a refusal
        click.echo(f"Cannot reach HubSpot at {settings.hubspot_api_base or API_BASE}: {exc}", err=True)
        sys.exit(1)
    except ReplyflowError as exc:
        click.echo(f"HubSpot refused: {exc}", err=True)
        sys.exit(1)
    finally:
        db.dispose()
    created = ", ".join(done.created_properties) or "none (they exist)"
    click.echo(f"Connected HubSpot portal {done.portal_id}. Contact properties created: {created}.")


def _now():
    from core.clock import SystemClock

    return SystemClock().now()
