"""Carries out the actions flows ask for (``action:`` steps), from the ActionTask outbox.

Available: ``woocommerce.confirm_booking`` / ``woocommerce.reschedule_booking``
(bridge/woocommerce_actions.py), and ``webhook`` — a signed POST to ``params.url`` (or ``REPLYFLOW_ACTION_WEBHOOK_URL``)
with the action, the flow, the contact and the params, so a booking tool or CRM can confirm,
reschedule or tag. Connector actions (``hubspot.add_tag``, ``woocommerce.confirm_booking``, ...)
arrive with their connectors; until then such a task fails with a reason saying so.
"""

from __future__ import annotations

import logging
from typing import Callable

from connectors.outbound.client import post_signed
from core.errors import PermanentError, RetryableError
from core.store import session_scope
from core.store.models import ActionTask, Contact, FlowRun
from bridge import woocommerce_actions
from bridge.runtime import Runtime

__all__ = ["perform_action", "ACTIONS"]

_log = logging.getLogger(__name__)


def _webhook(rt: Runtime, task: ActionTask, contact: Contact | None, run: FlowRun | None) -> str:
    params = dict(task.params or {})
    url = params.pop("url", None) or rt.settings.action_webhook_url
    if not url:
        raise PermanentError("no URL: give the action a url param or set REPLYFLOW_ACTION_WEBHOOK_URL")
    payload = {"action": params.pop("event", "flow_action"), "task_id": task.id,
               "flow": run.flow_name if run else None, "run_id": task.flow_run_id, "params": params,
               "contact": {"phone": contact.phone_e164, "first_name": contact.first_name} if contact else None}
    status = post_signed(url, payload, rt.settings.action_secret, idempotency_key=f"replyflow-action-{task.id}")
    return f"delivered ({status})"


ACTIONS: dict[str, Callable[[Runtime, ActionTask, Contact | None, FlowRun | None], str]] = {"webhook": _webhook}
ACTIONS.update(woocommerce_actions.ACTIONS)


def perform_action(rt: Runtime, task_id: int) -> None:
    """Idempotent: a task that is no longer pending is left alone; retryable failures raise for a retry.

    The action's call (a shop's API, a webhook) is made with no transaction open, so a slow
    endpoint never keeps a pooled connection idle in a transaction: the task is read and its attempt
    counted in one short transaction, the outcome recorded in another, where a task another run
    finished meanwhile is left as it is."""
    with session_scope(rt.db) as s:
        task = s.get(ActionTask, task_id)
        if task is None or task.status != "pending":
            return
        task.attempts, task.updated_at = task.attempts + 1, rt.clock.now()
        contact = s.get(Contact, task.contact_id) if task.contact_id else None
        run = s.get(FlowRun, task.flow_run_id) if task.flow_run_id else None
    handler, retry = ACTIONS.get(task.name), None
    try:
        if handler is None:
            raise PermanentError(f"no action named {task.name!r} (available: {', '.join(sorted(ACTIONS))}); "
                                 "connector actions arrive with their connectors")
        result, status = handler(rt, task, contact, run), "done"
    except PermanentError as exc:
        result, status = str(exc), "failed"
        _log.warning("action %s (%s) failed: %s", task.id, task.name, exc)
    except RetryableError as exc:
        result, status, retry = f"attempt {task.attempts}: {exc}", "pending", exc
    with session_scope(rt.db) as s:
        row = s.get(ActionTask, task_id, with_for_update=True)
        if row is None or row.status != "pending":
            return
        row.result, row.status, row.updated_at = result, status, rt.clock.now()
    if retry is not None:
        raise retry
