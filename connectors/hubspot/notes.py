"""Write-back to HubSpot: the WhatsApp thread on the contact record.

For each batch the outbox hands over (up to 100 lines of one portal):

1. the contact: the linked one (``contact_ref``), else found by phone (phone, mobilephone and the
   WhatsApp phone property, compared in E.164), else created (``create_contacts``, on by default);
   its id goes back in every result so the bridge links it;
2. messages: new lines in ONE ``communications/batch/create`` call (WhatsApp channel, direction,
   text, template, delivery status; associated to the contact), lines written before (the task
   has ``external_id``) in ONE ``batch/update`` call: a retried or re-delivered line updates its
   Communication instead of adding a second;
3. a handoff with a reason: a Task for the contact's owner with the transcript and the inbox link;
   release, outcomes and other system lines: a Note;
4. the contact's ``whatsapp_last_reply_at`` / ``whatsapp_conversation_url`` in one batch update.

Limits: every call spends from a per-portal budget of ``requests_per_10s`` (installation config,
HubSpot's private-app default 100 per 10 s); when it runs out, or HubSpot answers 429, the lines
not yet written go back to the outbox with ``retry_after`` (TEN_SECONDLY_ROLLING: Retry-After or
10 s; SECONDLY: Retry-After or 1 s; DAILY: until midnight in the portal's time zone). Nothing is lost.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping, Sequence

from connectors.base import WriteResult, WriteTask
from connectors.hubspot import mapper
from connectors.hubspot.client import HubSpotClient, HubSpotError, RateLimited
from core.clock import Clock, SystemClock
from core.errors import RetryableError
from core.zones import read_zone

__all__ = ["HubSpotWriter", "Budget", "budget_for", "retry_after_for", "DEFAULT_BUDGET", "WINDOW"]

_log = logging.getLogger(__name__)
DEFAULT_BUDGET = 100  # requests per 10 s: HubSpot's default for private apps (Free/Starter)
WINDOW = 10.0


class Budget:
    """Requests left in the current 10-second window for one portal (shared by this process's writers)."""

    def __init__(self, limit: int) -> None:
        self.limit, self._start, self._used = limit, None, 0
        self._lock = threading.Lock()

    def take(self, now: datetime) -> float:
        """Spend one request: 0.0 when it may go, else the seconds until the window resets."""
        with self._lock:
            if self._start is None or (now - self._start).total_seconds() >= WINDOW:
                self._start, self._used = now, 0
            if self._used >= self.limit:
                return max(WINDOW - (now - self._start).total_seconds(), 0.1)
            self._used += 1
            return 0.0

    def exhaust(self, now: datetime) -> None:
        """HubSpot said 429: nothing more goes in this window."""
        with self._lock:
            self._start, self._used = self._start or now, self.limit


_budgets: dict[str, Budget] = {}
_budgets_lock = threading.Lock()


def budget_for(account: str, limit: int) -> Budget:
    with _budgets_lock:
        budget = _budgets.get(account)
        if budget is None or budget.limit != limit:
            budget = _budgets[account] = Budget(limit)
        return budget


def retry_after_for(exc: RateLimited, now: datetime, time_zone: str | None) -> float:
    """How long to wait after a 429, by the policy HubSpot named."""
    if exc.policy == "DAILY":
        zone = read_zone(time_zone) or timezone.utc
        local = now.astimezone(zone)
        midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        return max((midnight - local).total_seconds(), 60.0)
    if exc.retry_after is not None:
        return exc.retry_after
    return 1.0 if exc.policy == "SECONDLY" else WINDOW


class _Stop(Exception):
    """No more calls in this batch; the rest goes back to the outbox after ``retry_after``."""

    def __init__(self, detail: str, retry_after: float | None) -> None:
        super().__init__(detail)
        self.detail, self.retry_after = detail, retry_after


@dataclass
class _Contact:
    id: str
    owner_id: str | None = None


class HubSpotWriter:
    def __init__(self, client: HubSpotClient, config: Mapping[str, Any], account: str, *,
                 clock: Clock | None = None) -> None:
        self.client, self.config, self.account = client, config, account
        self.clock = clock or SystemClock()
        self.budget = budget_for(account, int(config.get("requests_per_10s") or DEFAULT_BUDGET))

    # ------------------------------------------------------------ every call goes through here

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        now = self.clock.now()
        wait = self.budget.take(now)
        if wait:
            raise _Stop(f"request budget of {self.budget.limit} per 10 s spent", wait)
        try:
            return fn(*args)
        except RateLimited as exc:
            self.budget.exhaust(now)
            raise _Stop(f"HubSpot 429 {exc.policy}", retry_after_for(exc, now, self.config.get("time_zone"))) from None

    # ------------------------------------------------------------ contacts

    def _contact(self, task: WriteTask, cache: dict[str, _Contact]) -> _Contact | str:
        """The HubSpot contact for the task, or the reason there is none."""
        if task.contact_ref:
            return cache.setdefault(f"id:{task.contact_ref}", _Contact(task.contact_ref))
        phone = task.contact.get("phone")
        if not phone:
            return "no phone number to find the HubSpot contact by"
        if phone in cache:
            return cache[phone]
        searched = tuple(self.config.get("phone_properties") or mapper.PHONE_PROPERTIES)
        props = (*searched, "hubspot_owner_id")
        found = [r for r in self._call(self.client.search_contacts, mapper.search_values(phone, searched), props)
                 if mapper.phone_matches(r, phone, self.config.get("default_country"))]
        if found:
            best = min(found, key=lambda r: int(r.id) if r.id.isdigit() else 0)  # the oldest record
            cache[phone] = _Contact(best.id, best.properties.get("hubspot_owner_id") or None)
        elif self.config.get("create_contacts", True):
            made = self._call(self.client.create_contact, mapper.new_contact(task.contact))
            cache[phone] = _Contact(made.id)
        else:
            return "no HubSpot contact has this phone number (creating contacts is off)"
        return cache[phone]

    def _owner(self, contact: _Contact) -> str | None:
        if contact.owner_id is None:
            record = self._call(self.client.get_contact, contact.id, ("hubspot_owner_id",))
            contact.owner_id = record.properties.get("hubspot_owner_id") or ""
        return contact.owner_id or None

    # ------------------------------------------------------------ the batch

    def write(self, tasks: Sequence[WriteTask]) -> Sequence[WriteResult]:
        results: dict[int, WriteResult] = {}
        try:
            self._write(tasks, results)
        except _Stop as stop:
            for t in tasks:
                results.setdefault(t.id, WriteResult(task_id=t.id, outcome="retry", detail=stop.detail,
                                                     retry_after=stop.retry_after))
        except RetryableError as exc:
            if not results:
                raise  # nothing could be tried: the whole batch waits
            for t in tasks:
                results.setdefault(t.id, WriteResult(task_id=t.id, outcome="retry", detail=str(exc)))
        return [results[t.id] for t in tasks]

    def _write(self, tasks: Sequence[WriteTask], results: dict[int, WriteResult]) -> None:
        cache: dict[str, _Contact] = {}
        contacts: dict[int, _Contact] = {}
        for t in tasks:
            found = self._contact(t, cache)
            if isinstance(found, str):
                results[t.id] = WriteResult(task_id=t.id, outcome="failed", detail=found)
            else:
                contacts[t.id] = found
        todo = [t for t in tasks if t.id in contacts]
        messages = [t for t in todo if t.kind == "message"]
        self._batch(self.client.create_communications, [t for t in messages if not t.external_id], contacts, results,
                    lambda t: (f"task:{t.id}", mapper.communication(t.payload, contacts[t.id].owner_id),
                               contacts[t.id].id))
        self._batch(self.client.update_communications, [t for t in messages if t.external_id], contacts, results,
                    lambda t: (t.external_id, mapper.communication_update(t.payload)))
        for t in todo:
            if t.kind != "message":
                self._single(t, contacts[t.id], results)
        self._contact_properties(todo, contacts)

    def _batch(self, call: Callable, tasks: list[WriteTask], contacts: dict[int, _Contact],
               results: dict[int, WriteResult], shape: Callable[[WriteTask], tuple]) -> None:
        if not tasks:
            return
        inputs = [shape(t) for t in tasks]
        try:
            written = self._call(call, inputs)
        except HubSpotError as exc:
            if len(tasks) > 1:  # one bad line refuses the whole batch: find it, write the others
                for t in tasks:
                    self._batch(call, [t], contacts, results, shape)
                return
            results[tasks[0].id] = WriteResult(task_id=tasks[0].id, outcome="failed", detail=str(exc))
            return
        by_trace = {r.trace_id: r.id for r in written}
        for t, item in zip(tasks, inputs):
            record_id = by_trace.get(item[0])
            results[t.id] = (WriteResult(task_id=t.id, outcome="done", external_id=record_id,
                                         contact_ref=contacts[t.id].id)
                             if record_id else WriteResult(task_id=t.id, outcome="retry",
                                                           detail="HubSpot's batch answer did not include this line"))

    def _single(self, t: WriteTask, contact: _Contact, results: dict[int, WriteResult]) -> None:
        data = t.payload.get("data") or {}
        try:
            if t.kind == "handoff" and data.get("reason") and not t.external_id:
                props = mapper.task(t.payload, t.contact, t.transcript, t.conversation_url, self._owner(contact))
                made = self._call(self.client.create_task, props, contact.id)
            elif t.external_id and t.kind != "handoff":
                made = self._call(self.client.update_note, t.external_id, mapper.note(t.payload, t.conversation_url))
            elif t.external_id:  # the handoff's task exists: a later change of the line adds nothing
                results[t.id] = WriteResult(task_id=t.id, outcome="done", external_id=t.external_id,
                                            contact_ref=contact.id)
                return
            else:
                made = self._call(self.client.create_note, mapper.note(t.payload, t.conversation_url), contact.id)
        except HubSpotError as exc:
            results[t.id] = WriteResult(task_id=t.id, outcome="failed", detail=str(exc))
            return
        results[t.id] = WriteResult(task_id=t.id, outcome="done", external_id=made.id, contact_ref=contact.id)

    def _contact_properties(self, tasks: list[WriteTask], contacts: dict[int, _Contact]) -> None:
        """Best effort: the record's last-reply time and conversation link (a failure loses no line)."""
        if not self.config.get("contact_properties", True):
            return
        updates: dict[str, dict[str, str]] = {}
        for t in tasks:
            if t.kind == "message":
                updates.setdefault(contacts[t.id].id, {}).update(mapper.contact_update(t.payload, t.conversation_url))
        updates = {cid: props for cid, props in updates.items() if props}
        if not updates:
            return
        try:
            self._call(self.client.update_contacts, list(updates.items()))
        except (_Stop, HubSpotError, RetryableError) as exc:
            _log.info("HubSpot contact properties not updated this time: %s", exc)

    def close(self) -> None:
        self.client.close()
