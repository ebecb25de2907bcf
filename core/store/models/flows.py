"""Flow runs (durable waits), every flow version ever run, and the actions flows ask for."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.store.models.base import Base, _fk, _open_rows

__all__ = ["FlowRun", "FlowVersion", "ActionTask"]


class FlowRun(Base):
    """One contact's way through one flow. Waits are durable: ``wake_at`` is the timer."""

    __tablename__ = "flow_run"
    __table_args__ = (Index("ix_flow_run_due", "status", "wake_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = _fk("workspace.id")
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"), index=True)
    flow_name: Mapped[str] = mapped_column(String(120))
    flow_version: Mapped[int]
    subject: Mapped[str] = mapped_column(String(255))  # what the run is about: "cart:<token>"
    active_key: Mapped[str | None] = mapped_column(String(400), unique=True)  # set while not ended
    status: Mapped[str] = mapped_column(String(16))  # waiting | handed_off | completed | cancelled | failed
    step: Mapped[str | None] = mapped_column(String(120))
    waiting_for: Mapped[str | None] = mapped_column(String(16))  # timer | reply
    wake_at: Mapped[datetime | None]
    vars: Mapped[dict[str, Any]] = mapped_column(default=dict)
    outcome: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class FlowVersion(Base):
    """Every flow version ever run, as written: a run keeps the definition it started with."""

    __tablename__ = "flow_version"
    __table_args__ = (UniqueConstraint("name", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    version: Mapped[int]
    text: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime]


class ActionTask(Base):
    """An action a flow asked for (a signed webhook, a connector call): an outbox, retried by jobs."""

    __tablename__ = "action_task"
    __table_args__ = (_open_rows("ix_action_task_pending", "updated_at", "pending"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = _fk("workspace.id")
    flow_run_id: Mapped[int | None] = mapped_column(ForeignKey("flow_run.id", ondelete="SET NULL"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(120))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | done | failed
    attempts: Mapped[int] = mapped_column(default=0)
    result: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
