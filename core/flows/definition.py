"""The flow language: YAML in, a validated, frozen ``Flow`` out.

A flow is a trigger plus an ordered list of steps. Each step does one thing and then goes to
``goto`` (default: the next step in the list; ``end`` finishes the run). Errors name the
source, the step and the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from typing import Any, Mapping

import yaml

from core.errors import FlowDefinitionError
from core.flows.expressions import normalise_words, references
from core.flows.template_steps import (Fallback, Variant, WithoutConsent, params, parse_fallbacks, parse_share,
                                       parse_variants, parse_without_consent)

__all__ = ["Branch", "Step", "Filter", "TriggerSpec", "Flow", "Fallback", "Variant", "WithoutConsent", "parse_duration",
           "load_flow",
           "shipped_flows", "END"]

END = "end"
STEP_KINDS = ("wait", "send_template", "send_text", "send_list", "wait_for_reply", "handoff", "set", "action")
_ACTION = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?$")
FILTER_OPS = ("at_least", "at_most", "equals", "one_of")
REENTRY = ("restart_wait", "restart", "ignore")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Branch:
    goto: str
    button: str | None = None  # a reply/quick-reply id (or a list row id)
    keywords: tuple[str, ...] = ()  # whole-message keywords, case, accents and punctuation folded
    regex: str | None = None  # searched (case-insensitive) in the text and in a tapped button/row id
    any_text: bool = False
    media: bool = False  # an image, video, audio, document or sticker


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    id: str
    kind: str
    goto: str | None = None  # where to go after; None = the next step
    duration: str | None = None  # wait: literal ("1h") or an expression giving one
    template: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    text: str | None = None
    buttons: tuple[tuple[str, str], ...] = ()
    branches: tuple[Branch, ...] = ()
    timeout: str | None = None
    on_timeout: str = END
    otherwise: str | None = None  # unrecognised reply; None = hand off
    on_blocked: str = END  # where to go when the policy gate refuses a send
    reason: str | None = None  # handoff
    handoff_timeout: str | None = None  # handoff: nobody takes it within this long → on_timeout
    on_release: str = END  # handoff: where the bot resumes when the agent releases the conversation
    reask: str | None = None  # wait_for_reply: what to say to a reply the flow does not understand
    reask_limit: int = 1  # how many times to re-ask before ``otherwise`` (default: hand off)
    sets_vars: Mapping[str, str] = field(default_factory=dict)  # set: run variables
    sets_contact: Mapping[str, str] = field(default_factory=dict)  # set: contact properties
    action: str | None = None  # action: its name, e.g. "webhook" or "<connector>.<verb>"
    list_button: str | None = None  # send_list: the button that opens the list
    sections: tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...] = ()  # (title, ((id, title, description)...))
    fallbacks: tuple[Fallback, ...] = ()  # send_template: when the template cannot be sent
    variants: tuple[Variant, ...] = ()  # send_template: A/B arms (the step's template is then the first arm's)
    without_consent: WithoutConsent | None = None  # send_template: the utility notice for a contact never opted in


@dataclass(frozen=True, slots=True, kw_only=True)
class Filter:
    field: str  # a context path, e.g. "cart.total"
    op: str  # at_least | at_most | equals | one_of
    value: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class TriggerSpec:
    event: str
    cancel_on: tuple[str, ...] = ()
    reentry: str = "restart_wait"  # restart_wait | restart | ignore
    filters: tuple[Filter, ...] = ()
    priority: int = 0  # when two flows want the same contact at once, the higher priority runs


@dataclass(frozen=True, slots=True, kw_only=True)
class Flow:
    name: str
    version: int
    trigger: TriggerSpec
    steps: tuple[Step, ...]
    description: str = ""
    holdout: float = 0.0  # share of contacts entering the flow who get no message (the control group)
    text: str = field(default="", repr=False, compare=False)  # the YAML it was loaded from

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def after(self, step: Step) -> str:
        """The id of the step that follows ``step`` (its goto, or the next in the list)."""
        if step.goto:
            return step.goto
        index = self.steps.index(step)
        return self.steps[index + 1].id if index + 1 < len(self.steps) else END


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip()) if text else None
    if not text or match is None or not any(match.groups()):
        raise ValueError(f"not a duration: {text!r} (use forms like 90s, 30m, 1h, 2d, 1h30m)")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def _kind(value: Any) -> str:
    """What a YAML value is, in words a flow author knows."""
    kinds = {bool: "yes/no", str: "text", int: "a number", float: "a number", list: "a list"}
    return next((f"{k} {value!r}" if k == "text" else k for t, k in kinds.items() if isinstance(value, t)),
                type(value).__name__)


class _Reader:
    """Validation helpers that know where they are, so every error names its place."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> FlowDefinitionError:
        return FlowDefinitionError(f"{self.source}: {where}: {message}")

    def mapping(self, value: Any, where: str) -> Mapping[str, Any]:
        if value is None:
            raise self.fail(where, "missing (expected 'key: value' lines indented under it)")
        if not isinstance(value, Mapping):
            raise self.fail(where, f"expected 'key: value' lines, got {_kind(value)}")
        return value

    def keys(self, value: Mapping[str, Any], allowed: set[str], where: str) -> None:
        unknown = [str(k) for k in value if k not in allowed]
        if unknown:
            raise self.fail(where, f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")

    def target(self, body: Mapping[str, Any], key: str, where: str, default: str | None) -> str | None:
        """A step id to go to: absent → default; present → must be a non-empty string."""
        if key not in body:
            return default
        value = body[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{where}.{key}", "expected the id of a step (or 'end')")
        return value

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, "expected a non-empty string")
        try:
            references(value)
        except ValueError as exc:
            raise self.fail(where, str(exc)) from None
        return value

    def duration(self, value: Any, where: str) -> str:
        text = self.text(str(value) if isinstance(value, (int, float)) else value, where)
        if "{{" not in text:
            try:
                parse_duration(text)
            except ValueError as exc:
                raise self.fail(where, str(exc)) from None
        return text


def _branches(r: _Reader, where: str, items: Any) -> tuple[Branch, ...]:
    if not isinstance(items, list):
        raise r.fail(f"{where}.replies", "expected a list of branches")
    out = []
    for i, item in enumerate(items):
        item = r.mapping(item, f"{where}.replies[{i}]")
        r.keys(item, {"goto", "button", "keywords", "regex", "any_text", "media"}, f"{where}.replies[{i}]")
        regex = item.get("regex")
        if regex is not None:
            try:
                re.compile(str(regex))
            except re.error as exc:
                raise r.fail(f"{where}.replies[{i}].regex", f"not a regular expression: {exc}") from None
        goto = r.text(item.get("goto"), f"{where}.replies[{i}].goto")
        keywords = item.get("keywords", ())
        if not isinstance(keywords, (list, tuple)) or not all(isinstance(k, str) for k in keywords):
            raise r.fail(f"{where}.replies[{i}].keywords", "expected a list of strings (quote words such as "
                                                           "\"yes\", \"no\", \"on\": YAML reads them as true/false)")
        button = item.get("button")
        if button is not None and not isinstance(button, str):
            raise r.fail(f"{where}.replies[{i}].button", "expected a button id (a string)")
        branch = Branch(goto=goto, button=button, keywords=tuple(normalise_words(k) for k in keywords),
                        regex=None if regex is None else str(regex), any_text=bool(item.get("any_text", False)),
                        media=bool(item.get("media", False)))
        if not (branch.button or branch.keywords or branch.regex or branch.any_text or branch.media):
            raise r.fail(f"{where}.replies[{i}]", "a branch needs one of: button, keywords, regex, any_text, media")
        out.append(branch)
    return tuple(out)


def _buttons(r: _Reader, where: str, items: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(items, list) or not 1 <= len(items) <= 3:
        raise r.fail(where, f"reply buttons allow 1 to 3, got {len(items) if isinstance(items, list) else items!r}")
    out = []
    for i, item in enumerate(items):
        item = r.mapping(item, f"{where}[{i}]")
        button_id, title = r.text(item.get("id"), f"{where}[{i}].id"), r.text(item.get("title"), f"{where}[{i}].title")
        if len(title) > 20:
            raise r.fail(f"{where}[{i}].title", f"at most 20 characters, got {len(title)}")
        out.append((button_id, title))
    return tuple(out)


def _wait(r: _Reader, where: str, body: Any, common: dict) -> Step:
    return Step(**common, duration=r.duration(body, f"{where}.wait"))


def _send_text(r: _Reader, where: str, body: Any, common: dict) -> Step:
    if isinstance(body, str):
        return Step(**common, text=r.text(body, f"{where}.send_text"))
    body = r.mapping(body, f"{where}.send_text")
    r.keys(body, {"text", "buttons"}, f"{where}.send_text")
    buttons = _buttons(r, f"{where}.send_text.buttons", body["buttons"]) if "buttons" in body else ()
    return Step(**common, text=r.text(body.get("text"), f"{where}.send_text.text"), buttons=buttons)


def _send_template(r: _Reader, where: str, body: Any, common: dict) -> Step:
    at = f"{where}.send_template"
    body = r.mapping(body, at)
    r.keys(body, {"name", "params", "fallback", "variants", "without_consent"}, at)
    checked = params(r, f"{at}.params", body.get("params", {}))
    fallbacks = parse_fallbacks(r, f"{at}.fallback", body["fallback"]) if "fallback" in body else ()
    alternative = (parse_without_consent(r, f"{at}.without_consent", body["without_consent"])
                   if "without_consent" in body else None)
    variants = parse_variants(r, f"{at}.variants", body["variants"]) if "variants" in body else ()
    if variants and "name" in body:
        raise r.fail(at, "give either name or variants (each variant names its template)")
    name = variants[0].template if variants else r.text(body.get("name"), f"{at}.name")
    return Step(**common, template=name, params=checked, fallbacks=fallbacks, variants=variants,
                without_consent=alternative)


def _rows(r: _Reader, where: str, items: Any) -> tuple[tuple[str, str, str], ...]:
    if not isinstance(items, list) or not items:
        raise r.fail(where, "expected a non-empty list of rows")
    rows = []
    for i, item in enumerate(items):
        item = r.mapping(item, f"{where}[{i}]")
        r.keys(item, {"id", "title", "description"}, f"{where}[{i}]")
        title = r.text(item.get("title"), f"{where}[{i}].title")
        description = str(item.get("description") or "")
        if len(title) > 24 or len(description) > 72:
            raise r.fail(f"{where}[{i}]", f"row titles allow at most 24 characters and descriptions 72, "
                                          f"got {len(title)} and {len(description)}")
        rows.append((r.text(item.get("id"), f"{where}[{i}].id"), title, description))
    return tuple(rows)


def _send_list(r: _Reader, where: str, body: Any, common: dict) -> Step:
    body = r.mapping(body, f"{where}.send_list")
    r.keys(body, {"text", "button", "sections"}, f"{where}.send_list")
    button = r.text(body.get("button"), f"{where}.send_list.button")
    if len(button) > 20:
        raise r.fail(f"{where}.send_list.button", f"at most 20 characters, got {len(button)}")
    raw_sections = body.get("sections")
    if not isinstance(raw_sections, list) or not raw_sections:
        raise r.fail(f"{where}.send_list.sections", "expected a non-empty list of sections")
    sections = []
    for i, sec in enumerate(raw_sections):
        sec = r.mapping(sec, f"{where}.send_list.sections[{i}]")
        r.keys(sec, {"title", "rows"}, f"{where}.send_list.sections[{i}]")
        sections.append((str(sec.get("title") or ""), _rows(r, f"{where}.send_list.sections[{i}].rows", sec.get("rows"))))
    total = sum(len(rows) for _title, rows in sections)
    if total > 10:
        raise r.fail(f"{where}.send_list", f"a list allows at most 10 rows in all, got {total}")
    return Step(**common, text=r.text(body.get("text"), f"{where}.send_list.text"), list_button=button,
                sections=tuple(sections))


def _handoff(r: _Reader, where: str, body: Any, common: dict) -> Step:
    if isinstance(body, str):
        return Step(**common, reason=r.text(body, f"{where}.handoff"))
    body = r.mapping(body, f"{where}.handoff")
    r.keys(body, {"reason", "timeout", "on_timeout", "on_release"}, f"{where}.handoff")
    timeout = r.duration(body["timeout"], f"{where}.handoff.timeout") if "timeout" in body else None
    return Step(**common, reason=r.text(body.get("reason"), f"{where}.handoff.reason"), handoff_timeout=timeout,
                on_timeout=r.target(body, "on_timeout", f"{where}.handoff", END),
                on_release=r.target(body, "on_release", f"{where}.handoff", END))


def _wait_for_reply(r: _Reader, where: str, body: Any, common: dict) -> Step:
    body = r.mapping(body, f"{where}.wait_for_reply")
    r.keys(body, {"timeout", "replies", "otherwise", "on_timeout", "reask", "reask_limit"}, f"{where}.wait_for_reply")
    limit = body.get("reask_limit", 1)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= 3:
        raise r.fail(f"{where}.wait_for_reply.reask_limit", "expected 0 to 3 (never an endless loop)")
    reask = r.text(body["reask"], f"{where}.wait_for_reply.reask") if "reask" in body else None
    return Step(**common, timeout=r.duration(body.get("timeout"), f"{where}.wait_for_reply.timeout"),
                branches=_branches(r, f"{where}.wait_for_reply", body.get("replies", [])),
                on_timeout=r.target(body, "on_timeout", f"{where}.wait_for_reply", END),
                otherwise=r.target(body, "otherwise", f"{where}.wait_for_reply", None), reask=reask,
                reask_limit=limit)


def _set(r: _Reader, where: str, body: Any, common: dict) -> Step:
    body = r.mapping(body, f"{where}.set")
    r.keys(body, {"vars", "contact"}, f"{where}.set")
    values = {}
    for group in ("vars", "contact"):
        mapping = r.mapping(body.get(group, {}), f"{where}.set.{group}")
        values[group] = {str(k): r.text(str(v), f"{where}.set.{group}.{k}") for k, v in mapping.items()}
    if not (values["vars"] or values["contact"]):
        raise r.fail(f"{where}.set", "nothing to set: give vars and/or contact")
    return Step(**common, sets_vars=values["vars"], sets_contact=values["contact"])


def _action(r: _Reader, where: str, body: Any, common: dict) -> Step:
    body = r.mapping(body, f"{where}.action")
    r.keys(body, {"name", "params"}, f"{where}.action")
    name = r.text(body.get("name"), f"{where}.action.name")
    if not _ACTION.match(name):
        raise r.fail(f"{where}.action.name", f"expected a name such as webhook or hubspot.add_tag, got {name!r}")
    params = r.mapping(body.get("params", {}), f"{where}.action.params")
    return Step(**common, action=name,
                params={str(k): r.text(str(v), f"{where}.action.params.{k}") for k, v in params.items()})


_STEP_PARSERS = {"wait": _wait, "send_text": _send_text, "send_template": _send_template, "send_list": _send_list,
                 "handoff": _handoff, "wait_for_reply": _wait_for_reply, "set": _set, "action": _action}


def _step(r: _Reader, raw: Any, index: int) -> Step:
    raw = r.mapping(raw, f"steps[{index}]")
    step_id = raw.get("id")
    if not isinstance(step_id, str) or not _ID.match(step_id):
        raise r.fail(f"steps[{index}].id", "expected a lower-case identifier such as 'send_reminder'")
    if step_id == END:
        raise r.fail(f"steps[{index}].id", f"'{END}' is reserved: 'goto: {END}' finishes the run")
    where = f"step '{step_id}'"
    kinds = [k for k in STEP_KINDS if k in raw]
    if len(kinds) != 1:
        raise r.fail(where, f"a step has exactly one of {', '.join(STEP_KINDS)}; got {kinds or 'none'}")
    kind = kinds[0]
    r.keys(raw, {"id", kind, "goto", "on_blocked"}, where)
    common = dict(id=step_id, kind=kind, goto=r.target(raw, "goto", where, None),
                  on_blocked=r.target(raw, "on_blocked", where, END))
    return _STEP_PARSERS[kind](r, where, raw[kind], common)


def _filters(r: _Reader, items: Any) -> tuple[Filter, ...]:
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


def _check_targets(r: _Reader, flow: Flow) -> None:
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


def load_flow(text: str, source: str = "<flow>") -> Flow:
    r = _Reader(source)
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
        steps=tuple(_step(r, s, i) for i, s in enumerate(steps_raw)),
        text=text,
    )
    seen: set[str] = set()
    for step in flow.steps:
        if step.id in seen:
            raise r.fail(f"step '{step.id}'", "duplicate step id")
        seen.add(step.id)
    _check_targets(r, flow)
    return flow


def shipped_flows() -> dict[str, Flow]:
    """The flows that ship with replyflow, by name."""
    folder = resources.files("core.flows") / "shipped"
    flows = {}
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml"):
            flow = load_flow(entry.read_text(encoding="utf-8"), source=entry.name)
            flows[flow.name] = flow
    return flows
