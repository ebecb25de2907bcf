"""What `replyflow flows simulate` reads: the flow (a file or a shipped flow's name), the event
(contact, cart, settings) and the scripted replies, from files or the shipped examples in
core/flows/examples; the context a flow sees, built from the event; and ``SimulationError`` for
input it cannot use."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

from core.carts import display_total
from core.flows.definition import Flow, load_flow, parse_duration, shipped_flows

__all__ = ["SimulationError", "example_names", "load_flow_ref", "load_event", "load_replies", "input_duration",
           "build_context"]

_REPLY_KEYS, _EVENT_KEYS = {"button", "text", "wait", "after"}, ("contact", "cart", "settings", "vars", "data")
_EXAMPLES = lambda: resources.files("core.flows") / "examples"  # noqa: E731


class SimulationError(ValueError):
    """An input file (event, replies) or a reply that the simulation cannot use."""


def example_names() -> list[str]:
    """The example event and replies files in core/flows/examples, by name (without .yaml)."""
    return sorted(e.name[:-5] for e in _EXAMPLES().iterdir() if e.name.endswith(".yaml"))


def load_flow_ref(ref: str) -> Flow:
    """A flow file's path, or the name of a shipped flow."""
    if Path(ref).is_file():
        return load_flow(Path(ref).read_text(encoding="utf-8"), source=ref)
    if ref not in (flows := shipped_flows()):
        raise SimulationError(f"no flow {ref!r}: not a file, nor a shipped flow ({', '.join(sorted(flows))})")
    return flows[ref]


def _read_yaml(ref: str, what: str) -> Any:
    if Path(ref).is_file():
        text = Path(ref).read_text(encoding="utf-8")
    elif ref in example_names():
        text = (_EXAMPLES() / f"{ref}.yaml").read_text(encoding="utf-8")
    else:
        raise SimulationError(f"no {what} file {ref!r} (examples: {', '.join(example_names())})")
    try:
        return yaml.safe_load(text)  # JSON is YAML too
    except yaml.YAMLError as exc:
        raise SimulationError(f"{ref}: not valid YAML or JSON: {exc}") from None


def load_event(ref: str) -> dict[str, Any]:
    """An event file (YAML or JSON), or the name of a shipped example such as ``cart_abandoned``."""
    event = _read_yaml(ref, "event")
    if not isinstance(event, dict) or any(not isinstance(event.get(k) or {}, dict) for k in _EVENT_KEYS):
        raise SimulationError(f"{ref}: expected a mapping with contact, cart, settings (each a mapping)")
    return event


def load_replies(ref: str) -> list[dict[str, Any]]:
    """A YAML list of ``button: ID``, ``text: ...``, ``wait: true``, ``after: 30m`` (a bare string is text)."""
    items = _read_yaml(ref, "replies")
    if not isinstance(items, list):
        raise SimulationError(f"{ref}: expected a list of replies")
    entries = []
    for i, item in enumerate(items):
        item = {"text": item} if isinstance(item, str) else item
        where = f"{ref}: replies[{i}]"
        if not isinstance(item, dict) or not item or set(item) - _REPLY_KEYS or len(set(item) - {"after"}) > 1:
            raise SimulationError(f"{where}: expected one of button, text, wait (and maybe after), got {item!r}")
        input_duration(item.get("after", "0s"), f"{where}.after")
        entries.append({**item, "where": where})
    return entries


def input_duration(text: Any, where: str) -> timedelta:
    try:
        return parse_duration(str(text))
    except ValueError as exc:
        raise SimulationError(f"{where}: {exc}") from None


def build_context(event: Mapping[str, Any]) -> dict[str, Any]:
    """The values a flow sees, shaped as ``core.flows.runs`` builds them for a live run."""
    contact, cart = event.get("contact") or {}, event.get("cart")
    ctx = {"settings": dict(event.get("settings") or {}), "vars": dict(event.get("vars") or {}),
           "event": dict(event.get("data") or {}),  # the trigger's data: {{ event.service }}
           "contact": {"first_name": contact.get("first_name") or contact.get("profile_name"),
                       "last_name": contact.get("last_name"), "email": contact.get("email"),
                       **dict(contact.get("properties") or {})}}
    if cart:
        try:
            total = Decimal(str(cart.get("total", "0")))
        except InvalidOperation:
            raise SimulationError(f"cart.total: not an amount: {cart.get('total')!r}") from None
        currency = str(cart.get("currency") or "USD")
        ctx["cart"] = {"token": cart.get("token", "sim-cart"), "recovery_url": cart.get("recovery_url"),
                       "total": str(total), "currency": currency, "total_display": display_total(total, currency)}
    return ctx


