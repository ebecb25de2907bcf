"""``shipped_flows``: the flows that ship with replyflow (the YAML files in core/flows/shipped/),
loaded and checked, by name."""

from __future__ import annotations

from importlib import resources

from core.flows.loader import load_flow
from core.flows.model import Flow

__all__ = ["shipped_flows"]


def shipped_flows() -> dict[str, Flow]:
    """The flows that ship with replyflow, by name."""
    folder = resources.files("core.flows") / "shipped"
    flows = {}
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml"):
            flow = load_flow(entry.read_text(encoding="utf-8"), source=entry.name)
            flows[flow.name] = flow
    return flows
