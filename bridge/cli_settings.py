"""The `replyflow settings` commands: a workspace's settings (quiet hours, marketing cap, delays,
what a contact without marketing consent may get). They take effect on the next job; no restart."""

from __future__ import annotations

import click

__all__ = ["settings", "KNOWN"]

KNOWN = {  # name -> what it takes (the policy gate and the flows read them)
    "quiet_hours": 'marketing waits out these hours in the contact\'s time zone: "21:00-09:00" or "off"',
    "marketing_cap": 'marketing templates per contact: "2/7d" or "off"',
    "timezone": "for contacts whose time zone is unknown, e.g. Europe/Madrid",
    "template_languages": 'language order when the contact\'s has no template: "en_US,es"',
    "cart_abandon_delay": 'how long a checkout waits before the first reminder: "1h", "30m"',
    "cart_utility_without_consent": '"on": a shopper who never opted in to marketing gets one plain utility '
                                    'notice (cart_saved) instead of nothing; "off" (default)',
}


@click.group()
def settings() -> None:
    """Show or change a workspace's settings."""


def _workspace(s, slug: str):
    from sqlalchemy import select

    from core.store.models import Workspace

    ws = s.scalar(select(Workspace).where(Workspace.slug == slug))
    if ws is None:
        raise click.ClickException(f"no workspace {slug!r}")
    return ws


def _check(values: dict) -> None:
    from core.flows.definition import parse_duration
    from core.gate import Policy

    try:
        Policy.from_settings(values)
        if values.get("cart_abandon_delay"):
            parse_duration(str(values["cart_abandon_delay"]))
        if values.get("timezone"):
            _zone(str(values["timezone"]))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def _zone(name: str) -> None:
    """The gate falls back to UTC on a zone it cannot read: refuse it here instead."""
    from core.zones import read_zone

    if read_zone(name) is None:
        raise ValueError(f"timezone: not a time zone: {name!r} (an IANA name such as Europe/Madrid or UTC)") from None


def _defaults(cart_abandon_delay: str) -> dict[str, str]:
    """What applies when the workspace sets nothing: the gate's defaults, and CART_ABANDON_DELAY."""
    from core.gate import Policy

    p = Policy()
    return {"quiet_hours": f"{p.quiet_start:%H:%M}-{p.quiet_end:%H:%M}" if p.quiet_start and p.quiet_end else "off",
            "marketing_cap": f"{p.marketing_cap}/{p.cap_window.days}d" if p.marketing_cap else "off",
            "timezone": p.default_timezone,
            "template_languages": ",".join(p.template_languages) or "none: the template's first language",
            "cart_abandon_delay": cart_abandon_delay,
            "cart_utility_without_consent": "on" if p.utility_without_consent else "off"}


@settings.command("show")
@click.option("--workspace", default="default", show_default=True, help="Workspace slug.")
def settings_show(workspace: str) -> None:
    """Every setting: the workspace's value, or the default that applies, marked (default)."""
    from core.store import session_scope
    from bridge.runtime import get_runtime

    rt = get_runtime()
    with session_scope(rt.db) as s:
        values = dict(_workspace(s, workspace).settings or {})
    defaults = _defaults(rt.settings.cart_abandon_delay)
    for name, meaning in KNOWN.items():
        value = values.pop(name) if name in values else f"{defaults[name]} (default)"
        click.echo(f"{name} = {value}    # {meaning}")
    for name, value in values.items():
        click.echo(f"{name} = {value}")


@settings.command("set")
@click.argument("name", type=click.Choice(sorted(KNOWN)))
@click.argument("value")
@click.option("--workspace", default="default", show_default=True, help="Workspace slug.")
def settings_set(name: str, value: str, workspace: str) -> None:
    """Set NAME to VALUE (checked first: a value the gate cannot read is refused)."""
    from core.store import session_scope
    from bridge.runtime import get_runtime

    with session_scope(get_runtime().db) as s:
        ws = _workspace(s, workspace)
        values = {**(ws.settings or {}), name: value}
        _check(values)
        ws.settings = values
    click.echo(f"{name} = {value} (workspace {workspace!r})")


@settings.command("unset")
@click.argument("name")
@click.option("--workspace", default="default", show_default=True, help="Workspace slug.")
def settings_unset(name: str, workspace: str) -> None:
    """Remove NAME: its default applies again."""
    from core.store import session_scope
    from bridge.runtime import get_runtime

    with session_scope(get_runtime().db) as s:
        ws = _workspace(s, workspace)
        ws.settings = {k: v for k, v in (ws.settings or {}).items() if k != name}
    click.echo(f"{name} is back to its default (workspace {workspace!r})")
