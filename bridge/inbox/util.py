"""Small helpers shared by the inbox's views."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from core.store.models import Workspace
from bridge.runtime import Runtime

__all__ = ["rt", "workspace_id", "ago", "money"]


def rt() -> Runtime:
    return current_app.extensions["replyflow"]


def workspace_id(s) -> int:
    return s.scalar(select(Workspace.id).where(Workspace.slug == "default"))


def ago(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours}h {minutes:02d}m"


def money(amount, currency: str | None) -> str:
    return f"{amount:,.2f} {currency or ''}".strip() if amount is not None else ""
