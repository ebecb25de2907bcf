"""Hold-out and A/B assignment: deterministic by a hash of the flow, the step and the contact, so a
contact always lands in the same group (a re-run, another worker, a replay: same answer)."""

from __future__ import annotations

import hashlib

from core.flows.definition import Flow

__all__ = ["bucket", "in_holdout", "variants_for", "assignment_vars"]


def bucket(*parts: object) -> float:
    """A number in [0, 1) from the parts' SHA-256: uniform, stable across processes and versions."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_holdout(flow: Flow, contact_id: int) -> bool:
    return flow.holdout > 0 and bucket("holdout", flow.name, contact_id) < flow.holdout


def variants_for(flow: Flow, contact_id: int) -> dict[str, str]:
    """step id -> the variant name this contact gets, for every step with A/B variants (even split)."""
    out = {}
    for step in flow.steps:
        if step.variants:
            index = int(bucket("variant", flow.name, step.id, contact_id) * len(step.variants))
            out[step.id] = step.variants[index].name
    return out


def assignment_vars(flow: Flow, contact_id: int) -> dict[str, object]:
    """What a new run records about its groups (run vars ``_holdout`` and ``_variants``)."""
    values: dict[str, object] = {}
    if flow.holdout > 0:
        values["_holdout"] = in_holdout(flow, contact_id)
    variants = variants_for(flow, contact_id)
    if variants:
        values["_variants"] = variants
    return values
