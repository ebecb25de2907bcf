"""Flow versions in the store: each (name, version) is kept as written, so a run in progress
keeps its definition when the file is edited (with a new version) or removed."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import FlowDefinitionError
from core.flows.definition import Flow, load_flow
from core.store.models import FlowVersion

__all__ = ["record", "load"]


def record(s: Session, flows: Iterable[Flow], now: datetime) -> None:
    """Store each flow version not seen before; a changed flow must carry a new version number."""
    for flow in flows:
        known = s.scalar(select(FlowVersion).where(FlowVersion.name == flow.name, FlowVersion.version == flow.version))
        if known is None:
            s.add(FlowVersion(name=flow.name, version=flow.version, text=flow.text, recorded_at=now))
        elif _steps(known.text) != _steps(flow.text):
            raise FlowDefinitionError(
                f"flow '{flow.name}' v{flow.version} differs from the v{flow.version} already in use: "
                f"give the changed flow a new version number (runs in progress keep v{flow.version})")
    s.flush()


@functools.lru_cache(maxsize=256)
def _steps(text: str) -> tuple:
    flow = load_flow(text, recorded=True)
    return flow.trigger, flow.steps


def load(s: Session, name: str, version: int) -> Flow | None:
    text = s.scalar(select(FlowVersion.text).where(FlowVersion.name == name, FlowVersion.version == version))
    return None if text is None else _parse(text, f"{name} v{version}")


@functools.lru_cache(maxsize=256)
def _parse(text: str, source: str) -> Flow:
    return load_flow(text, source=source, recorded=True)
