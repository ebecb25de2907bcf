"""An installation opened for use: credentials unsealed, and renewed first when the connector
says its token is about to expire (OAuth), so a job or a write-back never starts with a stale token.

No transaction is open while the platform renews the token: the installation is read in one short
transaction and the new credentials are stored in another (a slow token endpoint must not hold a
pooled connection idle in a transaction)."""

from __future__ import annotations

from dataclasses import replace

from connectors import REGISTRY
from core.installations import InstallationInfo, NotInstalled, info_of
from core.store import session_scope
from core.store.models import Installation
from bridge.runtime import Runtime

__all__ = ["opened"]


def opened(rt: Runtime, platform: str, account: str) -> InstallationInfo:
    """``NotInstalled`` when the account is not connected (or was removed while its token was being
    renewed); the platform's errors when a refresh fails."""
    with session_scope(rt.db) as s:
        info = info_of(s, platform, account, rt.sealer)
    refresh = getattr(REGISTRY.get(platform), "refresh", None)
    fresh = refresh(info, now=rt.clock.now()) if refresh is not None else None
    if fresh is None:
        return info
    with session_scope(rt.db) as s:
        inst = s.get(Installation, info.id)
        if inst is None or inst.status != "active":
            raise NotInstalled(f"{platform} account {account!r} was disconnected while its token was renewed")
        inst.credentials, inst.updated_at = rt.sealer.seal(dict(fresh)), rt.clock.now()
    return replace(info, credentials=dict(fresh))
