"""Write-back to the Shopify admin: what the conversation did, shown on the order or customer.

Each task (a handoff or an outcome line; the installation's ``write_kinds``) becomes, on the
order it is about (else on the customer):

- a tag through ``tagsAdd``, which only adds (the merchant's tags stay): ``whatsapp-recovered``
  when the conversation recovered the cart, ``whatsapp-handoff`` when an agent took over;
- metafields in replyflow's own namespace through ``metafieldsSet``: ``replyflow.conversation``
  (the link to the conversation in replyflow's inbox) and ``replyflow.whatsapp`` (one line saying
  what happened). The order's ``note`` is never written: ``orderUpdate(note)`` would replace what
  the merchant wrote.

Both calls are idempotent, so a task written twice (a retry, a status change) changes nothing more.
The record written on is returned as ``external_id`` (its GraphQL id).
"""

from __future__ import annotations

__all__ = ["ShopifyWriter", "NAMESPACE", "TAG_RECOVERED", "TAG_HANDOFF", "target_of"]

import logging
from typing import Sequence

from connectors.base import WriteResult, WriteTask
from connectors.shopify.client import ShopifyClient
from core.accounts import split_key
from core.errors import PermanentError, RetryableError

_log = logging.getLogger(__name__)
NAMESPACE = "replyflow"
TAG_RECOVERED = "whatsapp-recovered"
TAG_HANDOFF = "whatsapp-handoff"
_MAX_LINE = 240


def _order_id(task: WriteTask) -> str | None:
    data = task.payload.get("data") or {}
    cart = task.payload.get("cart") or {}
    value = data.get("order_id") or cart.get("order_id")
    return str(value) if value else None


def target_of(task: WriteTask, shop: str) -> str | None:
    """The GraphQL id to write on: the order the line is about, else this shop's customer."""
    order = _order_id(task)
    if order and order.isdigit():
        return f"gid://shopify/Order/{order}"
    account, customer = split_key(task.contact_ref)
    if account == shop and customer and customer.isdigit():
        return f"gid://shopify/Customer/{customer}"
    return None


def _tag(task: WriteTask) -> str | None:
    if task.kind == "handoff":
        return TAG_HANDOFF
    if task.kind == "outcome" and (task.payload.get("data") or {}).get("outcome") == "cart_recovered":
        return TAG_RECOVERED
    return None


def _line(task: WriteTask) -> str:
    text = " ".join(str(task.payload.get("text") or task.kind).split())
    line = f"WhatsApp: {text}"
    return line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 1] + "…"


class ShopifyWriter:
    """Writes one shop's tasks; per-task problems are results, throttling hands the rest back."""

    def __init__(self, client: ShopifyClient, shop: str) -> None:
        self.client, self.shop = client, shop

    def close(self) -> None:
        self.client.close()

    def write(self, tasks: Sequence[WriteTask]) -> list[WriteResult]:
        results: list[WriteResult] = []
        for i, task in enumerate(tasks):
            try:
                results.append(self._write(task))
            except RetryableError as exc:  # throttled or Shopify down: this task and the rest wait
                wait = exc.retry_after
                results += [WriteResult(task_id=t.id, outcome="retry", retry_after=wait, detail=str(exc))
                            for t in tasks[i:]]
                break
            except PermanentError as exc:
                results.append(WriteResult(task_id=task.id, outcome="failed", detail=str(exc)))
        return results

    def _write(self, task: WriteTask) -> WriteResult:
        target = target_of(task, self.shop)
        tag = _tag(task)
        if target is None:
            return WriteResult(task_id=task.id, outcome="done",
                               detail="no order or customer of this shop to show it on")
        if task.kind == "outcome" and tag is None:
            return WriteResult(task_id=task.id, outcome="done", detail="not recovered by WhatsApp: nothing to show")
        if tag:
            self.client.tags_add(target, [tag])
        fields = [(NAMESPACE, "whatsapp", "single_line_text_field", _line(task))]
        if task.conversation_url:
            fields.insert(0, (NAMESPACE, "conversation", "url", task.conversation_url))
        self.client.metafields_set(target, fields)
        return WriteResult(task_id=task.id, outcome="done", external_id=target)
