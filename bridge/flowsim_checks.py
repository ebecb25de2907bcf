"""The checks behind `replyflow flows validate`: a flow file loads, and each send_template step's
templates (variants, fallbacks, the notice for a contact without consent) exist in the catalogue with
exactly their params."""

from __future__ import annotations

from pathlib import Path

from core.errors import FlowDefinitionError, TemplateError
from core.flows.definition import Flow, load_flow
from core.templates import Catalogue, default_catalogue

__all__ = ["template_problems", "check_file", "validate_files"]


def _template_uses(step) -> list[tuple[str, str, str | None, dict]]:
    """(field, template, language, params) for the step's template, its A/B variants, fallbacks and the
    notice for a contact without marketing consent."""
    uses = [(f"send_template.variants[{i}]", v.template, None, dict(v.params if v.params is not None else step.params))
            for i, v in enumerate(step.variants)] or [("send_template.name", step.template or "", None, dict(step.params))]
    template = step.variants[0].template if step.variants else step.template or ""
    uses += [(f"send_template.fallback[{i}]", f.template or template, f.language,
              dict(f.params if f.params is not None else step.params))
             for i, f in enumerate(step.fallbacks) if not f.final]
    alt = step.without_consent
    if alt is not None:
        uses.append(("send_template.without_consent", alt.template, None,
                     dict(alt.params if alt.params is not None else step.params)))
    return uses


def template_problems(source: str, flow: Flow, catalogue: Catalogue | None = None) -> list[str]:
    """Each ``send_template`` step's templates (variants and fallbacks too) exist in the catalogue, in
    the language asked for, and their params are exactly the template's."""
    catalogue = catalogue or default_catalogue()
    problems = []
    for step in (s for s in flow.steps if s.kind == "send_template"):
        for where, name, language, params in _template_uses(step):
            try:
                template = catalogue.get(name, language)
            except TemplateError as exc:
                what = f"no template '{name}' in the catalogue" if name not in catalogue.names() else str(exc)
                problems.append(f"{source}: step '{step.id}': {where}: {what} (templates: {', '.join(catalogue.names())})")
                continue
            if where.endswith("without_consent") and template.category.value != "UTILITY":
                problems.append(f"{source}: step '{step.id}': {where}: template '{template.name}' is "
                                f"{template.category.value}; a contact without marketing consent may only get "
                                f"a UTILITY template")
            wanted, given = template.all_params, tuple(params)
            missing = [p for p in wanted if p not in given]
            unknown = [p for p in given if p not in wanted]
            if missing or unknown:
                detail = "; ".join(f"{label} {', '.join(names)}" for label, names in
                                   (("missing", missing), ("unknown", unknown)) if names)
                problems.append(f"{source}: step '{step.id}': template '{template.name}' needs params "
                                f"{', '.join(wanted) or '(none)'}; {detail}")
    return problems


def check_file(path: str) -> tuple[Flow | None, list[str]]:
    """The flow in ``path`` and its problems (none when the flow is good)."""
    try:
        flow = load_flow(Path(path).read_text(encoding="utf-8"), source=path)
    except OSError as exc:
        return None, [f"{path}: cannot read: {exc.strerror or exc}"]
    except UnicodeDecodeError as exc:
        return None, [f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at {exc.start})"]
    except FlowDefinitionError as exc:
        return None, [str(exc)]
    problems = template_problems(path, flow)
    return (None if problems else flow), problems


def validate_files(paths: list[str]) -> list[str]:
    """Every problem in the flow files ``paths``; empty when all of them are good."""
    return [problem for path in paths for problem in check_file(path)[1]]

