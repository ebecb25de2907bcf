"""The per-step parsers of the flow reader: one function per step kind (wait, send_text,
send_template, send_list, handoff, wait_for_reply, set, action) turning a step's YAML into a ``Step``,
and ``parse_step``, which checks the step's id and kind and picks the parser."""

from __future__ import annotations

import re
from typing import Any

from core.flows.expressions import normalise_words
from core.flows.model import END, STEP_KINDS, Branch, Step
from core.flows.reader import Reader
from core.flows.template_steps import params, parse_fallbacks, parse_variants, parse_without_consent

__all__ = ["parse_step"]

_ACTION = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?$")
_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def _branches(r: Reader, where: str, items: Any) -> tuple[Branch, ...]:
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


def _buttons(r: Reader, where: str, items: Any) -> tuple[tuple[str, str], ...]:
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


def _wait(r: Reader, where: str, body: Any, common: dict) -> Step:
    return Step(**common, duration=r.duration(body, f"{where}.wait"))


def _send_text(r: Reader, where: str, body: Any, common: dict) -> Step:
    if isinstance(body, str):
        return Step(**common, text=r.text(body, f"{where}.send_text"))
    body = r.mapping(body, f"{where}.send_text")
    r.keys(body, {"text", "buttons"}, f"{where}.send_text")
    buttons = _buttons(r, f"{where}.send_text.buttons", body["buttons"]) if "buttons" in body else ()
    return Step(**common, text=r.text(body.get("text"), f"{where}.send_text.text"), buttons=buttons)


def _send_template(r: Reader, where: str, body: Any, common: dict) -> Step:
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


def _rows(r: Reader, where: str, items: Any) -> tuple[tuple[str, str, str], ...]:
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


def _send_list(r: Reader, where: str, body: Any, common: dict) -> Step:
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


def _handoff(r: Reader, where: str, body: Any, common: dict) -> Step:
    if isinstance(body, str):
        return Step(**common, reason=r.text(body, f"{where}.handoff"))
    body = r.mapping(body, f"{where}.handoff")
    r.keys(body, {"reason", "timeout", "on_timeout", "on_release"}, f"{where}.handoff")
    timeout = r.duration(body["timeout"], f"{where}.handoff.timeout") if "timeout" in body else None
    return Step(**common, reason=r.text(body.get("reason"), f"{where}.handoff.reason"), handoff_timeout=timeout,
                on_timeout=r.target(body, "on_timeout", f"{where}.handoff", END),
                on_release=r.target(body, "on_release", f"{where}.handoff", END))


def _wait_for_reply(r: Reader, where: str, body: Any, common: dict) -> Step:
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


def _set(r: Reader, where: str, body: Any, common: dict) -> Step:
    body = r.mapping(body, f"{where}.set")
    r.keys(body, {"vars", "contact"}, f"{where}.set")
    values = {}
    for group in ("vars", "contact"):
        mapping = r.mapping(body.get(group, {}), f"{where}.set.{group}")
        values[group] = {str(k): r.text(str(v), f"{where}.set.{group}.{k}") for k, v in mapping.items()}
    if not (values["vars"] or values["contact"]):
        raise r.fail(f"{where}.set", "nothing to set: give vars and/or contact")
    return Step(**common, sets_vars=values["vars"], sets_contact=values["contact"])


def _action(r: Reader, where: str, body: Any, common: dict) -> Step:
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


def parse_step(r: Reader, raw: Any, index: int) -> Step:
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

