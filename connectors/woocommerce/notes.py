"""Write-back as PRIVATE order notes (``customer_note`` false: the customer is never emailed).

WooCommerce order notes cannot be edited, and a note per WhatsApp message (with every delivery
status) would bury the order's history, so the writer keeps to what a shop admin needs:

- ``handoff``: "handed to an agent", the reason, the customer's replies so far and the inbox link;
- ``release``: what the agent did, the bot takes over again;
- ``outcome``: the order placed and whether the cart counts as recovered, with the amount;
- ``message`` lines: only the customer's own replies, as a digest: all replies about one order that
  are flushed together become one note (and none at all when a handoff in the same batch already
  quotes them); the bot's and agent's messages and their status changes are not written;
- ``note``: a ready-made line replyflow needs the shop to see (e.g. an unusable billing phone).

The order is the one the line is about: the outcome's ``order_id``, else the contact's latest
WooCommerce cart (its order id). A line that was written once (``external_id`` set) is never
written again: its status changes only touch the line in replyflow.
"""

from __future__ import annotations

from typing import Any, Sequence

from connectors.base import WriteResult, WriteTask
from connectors.woocommerce.client import WooClient
from core.errors import PermanentError, RetryableError

__all__ = ["OrderNotes", "WRITE_KINDS", "order_of", "render"]

WRITE_KINDS = ["message", "handoff", "release", "outcome", "note"]
_QUOTED = 5  # customer replies quoted in a handoff note


def order_of(task: WriteTask) -> str | None:
    data = task.payload.get("data") or {}
    if data.get("order_id"):
        return str(data["order_id"])
    cart = task.payload.get("cart") or {}
    return str(cart.get("order_id") or cart.get("token") or "") or None


def _who(task: WriteTask) -> str:
    c = task.contact or {}
    name = " ".join(x for x in (c.get("first_name"), c.get("last_name")) if x) or c.get("profile_name")
    return name or "the customer"


def _link(task: WriteTask) -> str:
    return f"\nOpen the conversation: {task.conversation_url}" if task.conversation_url else ""


def _quote(text: Any) -> str:
    return '"' + " ".join(str(text or "").split())[:500] + '"'


def render(task: WriteTask, replies: Sequence[WriteTask] = ()) -> str:
    """The note for one task (``replies``: the customer's messages folded into it)."""
    kind, text = task.kind, task.payload.get("text") or ""
    if kind == "handoff":
        quoted = [line.get("text") for line in task.transcript if line.get("direction") == "in"][-_QUOTED:]
        quoted += [r.payload.get("text") for r in replies if r.payload.get("text") not in quoted]
        reason = (task.payload.get("data") or {}).get("reason") or text
        said = "\nCustomer wrote: " + " / ".join(_quote(q) for q in quoted if q) if any(quoted) else ""
        return f"WhatsApp: {_who(task)} was handed to an agent. Reason: {reason}{said}{_link(task)}"
    if kind == "release":
        return f"WhatsApp: the agent handed the conversation back. {text}{_link(task)}"
    if kind == "outcome":
        return f"WhatsApp cart recovery: {text}{_link(task)}"
    if kind == "message":
        lines = [task, *replies]
        label = "reply" if len(lines) == 1 else "replies"
        return f"WhatsApp {label} from {_who(task)}: " + " / ".join(_quote(t.payload.get("text")) for t in lines) \
            + _link(task)
    return f"WhatsApp: {text}{_link(task)}"


class OrderNotes:
    """The writer for one store."""

    def __init__(self, client: WooClient) -> None:
        self.client = client

    def _note(self, order_id: str, text: str, tasks: Sequence[WriteTask]) -> list[WriteResult]:
        try:
            note_id = self.client.add_private_note(order_id, text)
        except RetryableError as exc:
            return [WriteResult(task_id=t.id, outcome="retry", detail=str(exc), retry_after=exc.retry_after)
                    for t in tasks]
        except PermanentError as exc:
            return [WriteResult(task_id=t.id, outcome="failed", detail=str(exc)) for t in tasks]
        return [WriteResult(task_id=t.id, outcome="done", external_id=f"{order_id}/{note_id}") for t in tasks]

    def write(self, tasks: Sequence[WriteTask]) -> Sequence[WriteResult]:
        results: list[WriteResult] = []
        replies: dict[str, list[WriteTask]] = {}
        notes: list[tuple[str, WriteTask]] = []
        for task in tasks:
            order_id = order_of(task)
            if task.external_id:
                results.append(WriteResult(task_id=task.id, outcome="done", external_id=task.external_id,
                                           detail="written before; order notes cannot be edited"))
            elif order_id is None:
                results.append(WriteResult(task_id=task.id, outcome="done",
                                           detail="skipped: no WooCommerce order for this conversation"))
            elif task.kind == "message" and task.payload.get("direction") != "in":
                results.append(WriteResult(task_id=task.id, outcome="done",
                                           detail="not written: only the customer's replies become notes"))
            elif task.kind == "message":
                replies.setdefault(order_id, []).append(task)
            else:
                notes.append((order_id, task))
        for order_id, task in notes:
            folded = replies.pop(order_id, []) if task.kind == "handoff" else []
            results.extend(self._note(order_id, render(task, folded), [task, *folded]))
        for order_id, group in replies.items():
            results.extend(self._note(order_id, render(group[0], group[1:]), group))
        return results

    def close(self) -> None:
        self.client.close()
