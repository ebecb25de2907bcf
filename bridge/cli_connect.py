"""`replyflow connect <platform>`: one group; each connector's CLI module adds its command to it
(bridge/cli_connect_shopify.py, bridge/cli_connect_hubspot.py, bridge/cli_woocommerce.py)."""

from __future__ import annotations

import click

__all__ = ["connect"]


@click.group()
def connect() -> None:
    """Connect a shop or CRM to this bridge (its tokens are sealed with REPLYFLOW_SECRET_KEY)."""
