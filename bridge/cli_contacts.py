"""The `replyflow contacts` commands: consent, export and erasure of a contact."""

from __future__ import annotations


import click
from rich.console import Console

__all__ = ["contacts"]

_COUNTRY_HELP = "Country (ISO code, e.g. US) that gives a national number its meaning."


@click.group()
def contacts() -> None:
    """Look up, export or erase one contact by phone number."""


def _find_contact(s, workspace: str, phone: str, country: str | None):
    from sqlalchemy import select

    from core import privacy
    from core.errors import PhoneError
    from core.store.models import Workspace

    ws = s.scalar(select(Workspace).where(Workspace.slug == workspace))
    if ws is None:
        raise click.ClickException(f"no workspace {workspace!r}")
    try:
        contact = privacy.find_contact(s, ws.id, phone, country)
    except PhoneError as exc:
        raise click.ClickException(f"not a phone number: {exc}") from None
    if contact is None:
        raise click.ClickException("no contact with that phone number")
    return contact


def _export(phone: str, country: str | None, workspace: str) -> dict:
    from core import privacy
    from core.store import session_scope
    from bridge.runtime import get_runtime

    rt = get_runtime()
    with session_scope(rt.db) as s:
        data = privacy.export_contact(s, _find_contact(s, workspace, phone, country).id)
    data["generated_at"] = rt.clock.now().isoformat()
    return data


def _consent_line(current: dict) -> str:
    if current["all_opt_out"]:
        state = "opted out of all messages"
    elif current["marketing_opt_in"]:
        state = "marketing: opted in"
    elif current["marketing_opt_out"]:
        state = "marketing: opted out"
    else:
        return "marketing: no consent recorded"
    if current["marketing_source"]:
        state += f" (last marketing entry: {current['marketing_source']} at {current['marketing_at']})"
    return state


def _print_contact(console: Console, data: dict) -> None:
    from rich.table import Table
    from rich.text import Text

    c = data["contact"]
    name = " ".join(p for p in (c["first_name"], c["last_name"]) if p) or c["profile_name"] or "-"
    console.print(Text(f"contact #{c['id']}: {name}", style="bold"))
    for label, key in (("phone", "phone_e164"), ("WhatsApp id", "wa_id"), ("user id", "user_id"),
                       ("email", "email"), ("created", "created_at")):
        console.print(Text(f"  {label}: {c[key] or '-'}"))
    console.print(Text("  links: " + (", ".join(f"{x['platform']}:{x['external_id']}" for x in data["links"]) or "-")))
    console.print(Text(f"  {len(data['conversations'])} conversation(s), {len(data['messages'])} message(s), "
                       f"{len(data['carts'])} cart(s), {len(data['flow_runs'])} flow run(s)"))
    console.print(Text("consent now: " + _consent_line(data["consent"]["current"]), style="bold"))
    table = Table(title="consent ledger", title_justify="left")
    for column in ("time", "purpose", "action", "source"):
        table.add_column(column, no_wrap=True)
    table.add_column("evidence", overflow="fold")
    for e in data["consent"]["ledger"]:
        table.add_row(*(Text(str(e[k])) for k in ("at", "purpose", "action", "source", "evidence")))
    console.print(table if data["consent"]["ledger"] else Text("consent ledger: empty"))


@contacts.command("show")
@click.argument("phone")
@click.option("--country", help=_COUNTRY_HELP)
@click.option("--workspace", default="default", show_default=True, help="Workspace slug.")
def contacts_show(phone: str, country: str | None, workspace: str) -> None:
    """Show a contact, its consent state and the whole consent ledger (when and how it opted in or out)."""
    _print_contact(Console(), _export(phone, country, workspace))


@contacts.command("export")
@click.argument("phone")
@click.option("--country", help=_COUNTRY_HELP)
@click.option("--out", type=click.Path(dir_okay=False), help="Write the JSON here instead of standard output.")
@click.option("--workspace", default="default", show_default=True, help="Workspace slug.")
def contacts_export(phone: str, country: str | None, out: str | None, workspace: str) -> None:
    """Export everything held about a contact as JSON."""
    import json

    from core import privacy

    data = _export(phone, country, workspace)
    if out is None:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True))
        return
    privacy.write_export(out, data)
    click.echo(f"export of contact #{data['contact']['id']} written to {out}")


@contacts.command("erase")
@click.argument("phone")
@click.option("--country", help=_COUNTRY_HELP)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--workspace", default="default", show_default=True, help="Workspace slug.")
def contacts_erase(phone: str, country: str | None, yes: bool, workspace: str) -> None:
    """Erase a contact: personal fields, message texts and consent evidence go; counts stay."""
    from core import phones, privacy
    from core.store import session_scope
    from bridge.runtime import get_runtime

    rt = get_runtime()
    with session_scope(rt.db) as s:
        contact = _find_contact(s, workspace, phone, country)
        contact_id, masked = contact.id, phones.mask(contact.phone_e164 or "")
    if not yes:
        click.confirm(f"Erase contact #{contact_id} ({masked})? This cannot be undone", abort=True)
    with session_scope(rt.db) as s:
        privacy.erase_contact(s, contact_id, rt.clock.now(), salt=rt.settings.erase_salt)
    click.echo(f"contact #{contact_id} ({masked}) erased")


# ---------------------------------------------------------------- flows: check a flow file, play a run
