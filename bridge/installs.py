"""An installation opened for use: credentials unsealed, and renewed first when the connector
says its token is about to expire (OAuth), so a job or a write-back never starts with a stale token."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.orm import Session

from connectors import REGISTRY
from core.installations import InstallationInfo, info_of
from bridge.runtime import Runtime

__all__ = ["opened"]


def opened(rt: Runtime, s: Session, platform: str, account: str) -> InstallationInfo:
    """``NotInstalled`` when the account is not connected; the platform's errors when a refresh fails."""
    info = info_of(s, platform, account, rt.sealer)
    refresh = getattr(REGISTRY.get(platform), "refresh", None)
    if refresh is not None:
        fresh = refresh(s, info, sealer=rt.sealer, now=rt.clock.now())
        if fresh is not None:
            info = replace(info, credentials=dict(fresh))
    return info
