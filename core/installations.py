"""Connector installations: a shop or portal connected to a workspace, its sealed credentials
and its settings (API base, version, scopes, registered webhooks)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.sealed import Sealer
from core.store.models import Installation, Workspace

__all__ = ["InstallationInfo", "install", "uninstall", "active", "info_of", "NotInstalled"]


class NotInstalled(LookupError):
    """No active installation of that platform account."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InstallationInfo:
    """What a connector needs to reach its platform: opened credentials and the settings."""

    id: int
    workspace_id: int
    platform: str
    account: str
    credentials: Mapping[str, Any]
    config: Mapping[str, Any]


def install(s: Session, workspace: Workspace, platform: str, account: str, credentials: Mapping[str, Any],
            config: Mapping[str, Any], sealer: Sealer, now: datetime) -> Installation:
    """Create or refresh the installation (a reinstall replaces credentials, merges settings)."""
    inst = s.scalar(select(Installation).where(Installation.platform == platform, Installation.account == account))
    if inst is None:
        inst = Installation(workspace_id=workspace.id, platform=platform, account=account, installed_at=now)
        s.add(inst)
    inst.status, inst.updated_at = "active", now
    inst.installed_at = inst.installed_at or now
    inst.credentials = sealer.seal(credentials)
    inst.config = {**(inst.config or {}), **dict(config)}
    s.flush()
    return inst


def uninstall(s: Session, inst: Installation, now: datetime) -> None:
    """The platform says the app was removed: forget the token at once, keep the record."""
    inst.status, inst.credentials, inst.updated_at = "uninstalled", None, now


def active(s: Session, platform: str, account: str | None = None, *, workspace_id: int | None = None) -> list[Installation]:
    q = select(Installation).where(Installation.platform == platform, Installation.status == "active")
    if account is not None:
        q = q.where(Installation.account == account)
    if workspace_id is not None:
        q = q.where(Installation.workspace_id == workspace_id)
    return list(s.scalars(q.order_by(Installation.id)))


def info_of(s: Session, platform: str, account: str, sealer: Sealer) -> InstallationInfo:
    found = active(s, platform, account)
    if not found or not found[0].credentials:
        raise NotInstalled(f"{platform} account {account!r} is not connected (replyflow connect {platform} ...)")
    inst = found[0]
    return InstallationInfo(id=inst.id, workspace_id=inst.workspace_id, platform=platform, account=account,
                            credentials=sealer.open(inst.credentials), config=dict(inst.config or {}))
