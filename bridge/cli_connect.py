"""The `replyflow connect <platform>` group; each connector adds its command in its own module."""

from __future__ import annotations

import click

__all__ = ["connect"]


@click.group()
def connect() -> None:
    """Connect a shop or CRM (its tokens are sealed with REPLYFLOW_SECRET_KEY)."""
