"""``load_flow``: YAML in, a validated, frozen ``Flow`` out. It reads the top level and the
trigger, has each step parsed (core/flows/step_parsers.py), and checks that step ids are unique and
every goto names a step. Errors name the source, the step and the field.

A flow name starting with "campaign " is refused: `replyflow report` lists each campaign as the
flow ``campaign <its name>`` (core/metrics/history.py), so such a flow's runs would be counted
together with a campaign's. Versions already recorded in the store are read as they were accepted
(``recorded=True``): runs of a flow named so before this rule keep going.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from core.errors import FlowDefinitionError
from core.flows.model import END, FILTER_OPS, REENTRY, Filter, Flow, TriggerSpec
from core.flows.reader import Reader
from core.flows.step_parsers import parse_step
from core.flows.template_steps import parse_share

__all__ = ["load_flow"]


def _filters(r: Reader, items: Any) -> tuple[Filter, ...]:
    if items is None:
        return ()
    if not isinstance(items, list):
        raise r.fail("trigger.filters", "expected a list like [{field: cart.total, at_least: 50}]")
    out = []
    for i, item in enumerate(items):
        item = r.mapping(item, f"trigger.filters[{i}]")
        ops = [op for op in FILTER_OPS if op in item]
        r.keys(item, {"field", *FILTER_OPS}, f"trigger.filters[{i}]")
        if len(ops) != 1:
            raise r.fail(f"trigger.filters[{i}]", f"give exactly one of {', '.join(FILTER_OPS)}")
        out.append(Filter(field=r.text(item.get("field"), f"trigger.filters[{i}].field"), op=ops[0],
                          value=item[ops[0]]))
    return tuple(out)


def _check_targets(r: Reader, flow: Flow) -> None:
    ids = {s.id for s in flow.steps} | {END}
    for step in flow.steps:
        targets = {"goto": step.goto, "on_timeout": step.on_timeout, "otherwise": step.otherwise,
                   "on_blocked": step.on_blocked, "on_release": step.on_release}
        targets.update({f"replies[{i}].goto": b.goto for i, b in enumerate(step.branches)})
        targets.update({f"send_template.fallback[{i}].goto": f.goto for i, f in enumerate(step.fallbacks)})
        if step.without_consent is not None:
            targets["send_template.without_consent.goto"] = step.without_consent.goto
        for name, target in targets.items():
            if target is not None and target not in ids:
                raise r.fail(f"step '{step.id}'.{name}", f"no step named '{target}' (steps: {', '.join(sorted(ids))})")


_CAMPAIGN_NAME = re.compile(r"\s*campaign\s", re.IGNORECASE)


def _check_name(r: Reader, name: str) -> None:
    if _CAMPAIGN_NAME.match(name):
        rest = name.strip()[len("campaign"):].strip()
        raise r.fail("name", f"'{name}' starts with 'campaign', a word kept for campaigns: `replyflow report` "
                             f"lists each campaign as 'campaign <its name>', so this flow's figures would be mixed "
                             f"with those of a campaign named '{rest}'; give the flow another name, e.g. "
                             f"'{rest} campaign'")


def load_flow(text: str, source: str = "<flow>", *, recorded: bool = False) -> Flow:
    """The flow in ``text``; ``recorded``: a version's text from the store (core/flows/versions.py),
    already accepted once, so rules added since (the reserved name) do not strand its runs."""
    r = Reader(source)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FlowDefinitionError(f"{source}: not valid YAML: {exc}") from None
    raw = r.mapping(raw, "top level")
    r.keys(raw, {"name", "version", "description", "trigger", "steps", "holdout"}, "top level")
    trig = r.mapping(raw.get("trigger"), "trigger")
    r.keys(trig, {"event", "cancel_on", "reentry", "filters", "priority"}, "trigger")
    steps_raw = raw.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise r.fail("steps", "expected a non-empty list of steps")
    version = raw.get("version")
    if version is None:
        raise r.fail("version", "missing: give the flow a version number (version: 1), and a new one when it changes")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise r.fail("version", f"expected a whole number from 1 up, got {version!r}")
    cancel_on = trig.get("cancel_on", [])
    if not isinstance(cancel_on, list) or not all(isinstance(e, str) and e for e in cancel_on):
        raise r.fail("trigger.cancel_on", "expected a list of event names, e.g. [order_created]")
    reentry = trig.get("reentry", "restart_wait")
    if reentry not in REENTRY:
        raise r.fail("trigger.reentry", f"expected one of {', '.join(REENTRY)}, got {reentry!r}")
    priority = trig.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise r.fail("trigger.priority", "expected a whole number (higher wins)")
    flow = Flow(
        name=r.text(raw.get("name"), "name"),
        version=version,
        description=str(raw.get("description", "")),
        holdout=parse_share(r, raw.get("holdout", 0)),
        trigger=TriggerSpec(event=r.text(trig.get("event"), "trigger.event"),
                            cancel_on=tuple(cancel_on), reentry=reentry, filters=_filters(r, trig.get("filters")),
                            priority=priority),
        steps=tuple(parse_step(r, s, i) for i, s in enumerate(steps_raw)),
        text=text,
    )
    seen: set[str] = set()
    for step in flow.steps:
        if step.id in seen:
            raise r.fail(f"step '{step.id}'", "duplicate step id")
        seen.add(step.id)
    _check_targets(r, flow)
    if not recorded:
        _check_name(r, flow.name)
    return flow

