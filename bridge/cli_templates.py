"""The `replyflow templates` commands: validate template files, submit them to WhatsApp, sync and list
their approval status."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.table import Table

__all__ = ["templates"]


@click.group()
def templates() -> None:
    """Template files: check them, submit them for approval, follow their status."""


@templates.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
def templates_validate(paths: tuple[str, ...]) -> None:
    """Check template files (or folders of them, or a catalogue like core/templates.yaml) against
    WhatsApp's rules. Prints every problem with its file, language and field; exits 1 if any."""
    from core.template_files import check_paths

    found, issues = check_paths(paths)
    for problem in issues:
        click.echo(str(problem), err=True)
    names = sorted({t.name for t in found})
    click.echo(f"{len(found)} template language(s) in {len(names)} template(s) checked, {len(issues)} problem(s)")
    if issues:
        sys.exit(1)


def _runtime_and_folder(folder: str | None, *, calls_whatsapp: bool = False):
    from bridge.runtime import get_runtime, graph_base

    rt = get_runtime()
    if calls_whatsapp:
        graph_base(rt.settings)  # never the Graph API with the sandbox's made-up token
    return rt, folder or rt.settings.templates_dir


@templates.command("submit")
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
def templates_submit(paths: tuple[str, ...]) -> None:
    """Create the templates in PATHS (default: REPLYFLOW_TEMPLATES_DIR) on the WhatsApp Business account.
    A language already submitted is left alone; each answer's status is stored."""
    from bridge.template_sync import submit_templates
    from core.template_files import check_paths

    rt, folder = _runtime_and_folder(None, calls_whatsapp=True)
    chosen = paths or ((folder,) if folder else ())
    if not chosen:
        raise click.UsageError("give template files or set REPLYFLOW_TEMPLATES_DIR")
    found, issues = check_paths(chosen)
    if issues:
        for problem in issues:
            click.echo(str(problem), err=True)
        raise click.ClickException(f"{len(issues)} problem(s): nothing submitted")
    outcomes = submit_templates(rt, found)
    for o in outcomes:
        click.echo(f"{o.name} [{o.language}]: {o.outcome}")
    if any(o.outcome.startswith("failed") for o in outcomes):
        sys.exit(1)


@templates.command("sync")
def templates_sync() -> None:
    """Pull every template's status, quality and rejection reason from the WhatsApp Business account."""
    from bridge.template_sync import sync_templates

    rt, _ = _runtime_and_folder(None, calls_whatsapp=True)
    changes = sync_templates(rt)
    for change in changes:
        click.echo(change)
    click.echo(f"{len(changes)} change(s)")


@templates.command("list")
def templates_list() -> None:
    """The templates replyflow knows, with their stored status per language."""
    from core.store import session_scope
    from core.template_status import stored_templates

    rt, _ = _runtime_and_folder(None)
    table = Table("name", "language", "category", "status", "quality", "reason", "updated")
    with session_scope(rt.db) as s:
        rows = stored_templates(s)
        known = {(r.name, r.language) for r in rows}
        for r in rows:
            table.add_row(r.name, r.language, r.category, r.status, r.quality or "", r.rejected_reason or "",
                          r.updated_at.strftime("%Y-%m-%d %H:%M") if r.updated_at else "")
    unsynced = 0
    for t in rt.catalogue.templates:
        if (t.name, t.language) not in known:  # WhatsApp has not said: the file's status is only a claim
            unsynced += not rt.settings.sandbox
            status = f"{t.status.value} (sandbox)" if rt.settings.sandbox else f"not synced (file: {t.status.value})"
            table.add_row(t.name, t.language, t.category.value, status, "", "", "")
    _console().print(table)
    if unsynced:
        click.echo(f"{unsynced} template(s) have no status from WhatsApp yet: run `replyflow templates submit` "
                   "for new ones, `replyflow templates sync` for ones already on the account.")


def _console() -> Console:
    """Rich output; when piped (not a terminal) wide enough that no cell is cut."""
    console = Console()
    if not console.is_terminal:
        console.width = 200
    return console
