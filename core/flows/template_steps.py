"""The flow language's parts for template sends: fallbacks (another language, another template,
then hand off or go to a step), the notice sent instead to a contact without marketing consent,
A/B variants, and the hold-out share. ``r`` is the flow reader
of core/flows/reader.py (it knows the source and names every error's place)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from core.commands import SendTemplate

__all__ = ["Fallback", "WithoutConsent", "Variant", "params", "parse_fallbacks", "parse_without_consent",
           "parse_variants", "parse_share", "template_candidates", "without_consent_command"]

_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Fallback:
    """What a send_template step tries when its template cannot go (paused, rejected, disabled, missing):
    the same template in another ``language``, another ``template`` (with its own ``params`` or the
    step's), or, last, ``handoff`` (the reason) or ``goto`` a step."""

    template: str | None = None
    language: str | None = None
    params: Mapping[str, str] | None = None
    handoff: str | None = None
    goto: str | None = None

    @property
    def final(self) -> bool:
        return self.handoff is not None or self.goto is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class WithoutConsent:
    """What a send_template step sends when the gate refuses its marketing template only because the
    contact never opted in to marketing, and the workspace allows it (``cart_utility_without_consent``):
    a plain UTILITY ``template`` (its own ``params``, or the step's), then ``goto`` (default: the step's
    next). Never after an opt-out: then nothing is sent."""

    template: str
    params: Mapping[str, str] | None = None
    goto: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Variant:
    """One arm of an A/B test on a send_template step; contacts are split evenly and for good."""

    name: str
    template: str
    params: Mapping[str, str] | None = None  # None: the step's params


def params(r: Any, where: str, value: Any) -> dict[str, str]:
    params = r.mapping(value, where)
    return {k: r.text(v if isinstance(v, str) else (None if v is None else str(v)), f"{where}.{k}")
            for k, v in params.items()}


def parse_fallbacks(r: Any, where: str, items: Any) -> tuple[Fallback, ...]:
    if not isinstance(items, list) or not items:
        raise r.fail(where, "expected a list, e.g. [{language: en_US}, {template: other}, {handoff: reason}]")
    out = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        item = r.mapping(item, at)
        r.keys(item, {"template", "language", "params", "handoff", "goto"}, at)
        final = [k for k in ("handoff", "goto") if k in item]
        if len(final) > 1 or (final and set(item) - set(final)):
            raise r.fail(at, "handoff and goto stand alone (no template, language or params beside them)")
        if not final and not ({"template", "language"} & set(item)):
            raise r.fail(at, "give a language, a template (with params), a handoff reason or a goto step")
        if final and i != len(items) - 1:
            raise r.fail(at, f"{final[0]} ends the fallbacks: put it last")
        fb = Fallback(template=r.text(item["template"], f"{at}.template") if "template" in item else None,
                      language=r.text(item["language"], f"{at}.language") if "language" in item else None,
                      params=params(r, f"{at}.params", item["params"]) if "params" in item else None,
                      handoff=r.text(item["handoff"], f"{at}.handoff") if "handoff" in item else None,
                      goto=r.target(item, "goto", at, None))
        out.append(fb)
    return tuple(out)


def parse_without_consent(r: Any, where: str, item: Any) -> WithoutConsent:
    item = r.mapping(item, where)
    r.keys(item, {"template", "params", "goto"}, where)
    return WithoutConsent(template=r.text(item.get("template"), f"{where}.template"),
                          params=params(r, f"{where}.params", item["params"]) if "params" in item else None,
                          goto=r.target(item, "goto", where, None))


def parse_variants(r: Any, where: str, items: Any) -> tuple[Variant, ...]:
    if not isinstance(items, list) or len(items) < 2:
        raise r.fail(where, "expected at least two variants, e.g. [{name: a, template: x}, {name: b, template: y}]")
    out = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        item = r.mapping(item, at)
        r.keys(item, {"name", "template", "params"}, at)
        name = r.text(item.get("name"), f"{at}.name")
        if not _ID.match(name):
            raise r.fail(f"{at}.name", "expected a short lower-case identifier such as a or short_copy")
        out.append(Variant(name=name, template=r.text(item.get("template"), f"{at}.template"),
                           params=params(r, f"{at}.params", item["params"]) if "params" in item else None))
    names = [v.name for v in out]
    if len(set(names)) != len(names):
        raise r.fail(where, "variant names must differ")
    return tuple(out)


def parse_share(r: Any, value: Any) -> float:
    """``holdout: 10%`` or ``holdout: 0.1``: a share from 0 up to (not including) 1."""
    text = str(value).strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise r.fail("holdout", f"expected a share such as 10% or 0.1, got {value!r}") from None
    if isinstance(value, bool) or not 0 <= share < 1:
        raise r.fail("holdout", f"expected a share from 0% up to (not including) 100%, got {value!r}")
    return share


def template_candidates(step: Any, ctx: Mapping[str, Any], fill: Callable[[str], str]) -> list[SendTemplate]:
    """What a send_template step tries, in order: its template (the run's A/B arm when it has
    variants, as recorded in ``vars._variants``), then each fallback template or language."""
    params = {k: fill(v) for k, v in step.params.items()}
    template = step.template or ""
    arm = dict((ctx.get("vars") or {}).get("_variants") or {}).get(step.id)
    variant = next((v for v in step.variants if v.name == arm), step.variants[0] if step.variants else None)
    if variant is not None:
        template = variant.template
        if variant.params is not None:
            params = {k: fill(v) for k, v in variant.params.items()}
    out = [SendTemplate(template=template, params=params, step=step.id)]
    for fb in step.fallbacks:
        if fb.final:
            continue
        fb_params = {k: fill(v) for k, v in fb.params.items()} if fb.params is not None else params
        out.append(SendTemplate(template=fb.template or template, language=fb.language, params=fb_params, step=step.id))
    return out


def without_consent_command(step: Any, fill: Callable[[str], str]) -> SendTemplate:
    """The step's notice for a contact without marketing consent, rendered."""
    alt = step.without_consent
    given = alt.params if alt.params is not None else step.params
    return SendTemplate(template=alt.template, params={k: fill(v) for k, v in given.items()}, step=step.id)
