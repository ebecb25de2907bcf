"""`replyflow flows validate|simulate`: check flow files, and play a flow run in the terminal.

The simulation drives the real engine with its own clock and one contact, and asks the real
policy gate before every send: it prints what the bridge would do. Nothing is stored or sent.
"""

from __future__ import annotations

import collections
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from core.carts import display_total
from core.commands import HandOff, SendTemplate, SendText
from core.consent import ConsentState, message_intent
from core.errors import FlowDefinitionError, TemplateError
from core.flows import engine, runs
from core.flows.definition import Flow, load_flow, parse_duration, shipped_flows
from core.flows.expressions import normalise_words
from core.gate import Decision, Policy, Verdict, decide
from core.outbox import outgoing_for
from core.session import Session
from core.templates import ButtonKind, Catalogue, default_catalogue, render

__all__ = ["DEFAULT_START", "SimulationError", "check_file", "validate_files", "template_problems", "load_flow_ref",
           "load_event", "load_replies", "build_context", "example_names", "simulate"]

DEFAULT_START = datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc)
MAX_EVENTS = 200  # a simulation that has not ended after this many events is stopped
_REPLY_KEYS, _EVENT_KEYS = {"button", "text", "wait", "after"}, ("contact", "cart", "settings", "vars", "data")
Echo = Callable[[str], None]
_EXAMPLES = lambda: resources.files("core.flows") / "examples"  # noqa: E731


class SimulationError(ValueError):
    """An input file (event, replies) or a reply that the simulation cannot use."""


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
        _duration(item.get("after", "0s"), f"{where}.after")
        entries.append({**item, "where": where})
    return entries


def _duration(text: Any, where: str) -> timedelta:
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


class _Sim:
    """One simulated contact, its clock and its consent, and the transcript of what happens."""

    def __init__(self, flow: Flow, event: Mapping[str, Any], replies: list | None, start: datetime, echo: Echo,
                 ask: Callable[[str], str] | None) -> None:
        c = event.get("contact") or {}
        self.flow, self.ctx, self.clock, self.echo, self.ask = flow, build_context(event), start, echo, ask
        self.replies = None if replies is None else collections.deque(replies)
        self.name = self.ctx["contact"]["first_name"] or "customer"
        self.catalogue, self.policy = default_catalogue(), Policy.from_settings(self.ctx["settings"])
        self.consent = ConsentState(**{k: bool(c.get(k)) for k in ("marketing_opt_in", "marketing_opt_out",
                                                                   "all_opt_out")})
        self.session = Session(last_inbound_at=_instant(c["last_inbound_at"]) if c.get("last_inbound_at") else None)
        self.deliverability = c.get("deliverability")
        self.zone_name = c.get("timezone") or self.policy.default_timezone
        try:
            self.zone = ZoneInfo(self.zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise SimulationError(f"contact.timezone: unknown time zone {self.zone_name!r}") from None
        self.marketing_sent: list[datetime] = []
        self.choices: list[tuple[str, str]] = []  # (id, title) of the last message's buttons or list rows
        self.titles: dict[str, str] = {}  # every button offered so far

    def when(self, at: datetime) -> str:
        utc = f"{at.astimezone(timezone.utc):%a %d %b %Y %H:%M} UTC"
        return utc if self.zone_name == "UTC" else f"{utc} ({at.astimezone(self.zone):%H:%M} {self.zone_name})"

    def check(self, command: Any) -> Decision:
        """The real gate, for this contact at the simulated time; refusals and deferrals are printed."""
        try:
            outgoing = outgoing_for(command, self.catalogue)
        except TemplateError as exc:
            decision = Decision(verdict=Verdict.BLOCKED, reason=str(exc), template_problem=True)
        else:
            decision = decide(outgoing, consent=self.consent, session=self.session, now=self.clock,
                              deliverability=self.deliverability, timezone_name=self.zone_name,
                              marketing_sent=tuple(self.marketing_sent), policy=self.policy)
        what = f"template {command.template}" if isinstance(command, SendTemplate) else "message"
        if decision.verdict is Verdict.DEFERRED and decision.until is not None:
            local = decision.until.astimezone(self.zone)
            self.echo(f"gate: {what} deferred until {local:%H:%M} {self.zone_name} on {local:%a %d %b} "
                      f"({decision.reason})")
        elif decision.verdict is not Verdict.ALLOWED:
            self.echo(f"gate: {what} {decision.verdict.value.replace('_', ' ')}: {decision.reason}")
        return decision

    def show(self, adv: Any) -> Any:
        """The engine's notes, each message shown after the note that sends it; returns the new state."""
        pending = list(adv.commands)
        for line in adv.notes:
            self.echo(f"  · {line}")
            if pending and _announces(line, pending[0]):
                self.show_command(pending.pop(0))
        for command in pending:
            self.show_command(command)
        return adv.state

    def show_command(self, command: Any) -> None:
        if isinstance(command, HandOff):
            self.echo(f"→ agent: {command.reason}")
        elif isinstance(command, SendTemplate):
            self.show_template(command)
        elif isinstance(command, SendText):
            self.bubble(f"text to {self.name}", command.text.splitlines(), list(command.buttons), [])
        elif hasattr(command, "sections"):  # a list message: its rows are the choices
            rows = [(row[0], row[1]) for _title, section in command.sections for row in section]
            self.bubble(f"list to {self.name}", command.text.splitlines(), rows, [f"☰ {command.button}"])
        else:  # SetContact, ResumeBot, ...: no message, shown as they are
            self.echo(f"⚙ {command!r}")

    def show_template(self, command: SendTemplate) -> None:
        try:
            template = self.catalogue.get(command.template, command.language)
            shown = render(template, command.params)
        except TemplateError as exc:
            self.echo(f"✗ template {command.template} cannot be rendered, the outbox would block it: {exc}")
            return
        if template.category.value == "MARKETING":
            self.marketing_sent.append(self.clock)
        lines = [p for part in (shown.header, shown.body, shown.footer) if part for p in part.splitlines()]
        quick = [(b.payload or b.text, b.text) for b in template.buttons if b.kind is ButtonKind.QUICK_REPLY]
        links = [f"🔗 {b.text}" for b in template.buttons if b.kind is not ButtonKind.QUICK_REPLY]
        self.bubble(f"template {template.name} ({template.category.value}) to {self.name}", lines, quick, links)

    def bubble(self, title: str, lines: list[str], buttons: list[tuple[str, str]], extra: list[str]) -> None:
        self.echo(f"📤 {title}:")
        for line in lines:
            self.echo(f"   │ {line}" if line else "   │")
        numbered = "   ".join(f"[{i}] {label}" for i, (_, label) in enumerate(buttons, 1))
        for line in ([numbered] if buttons else []) + extra:
            self.echo(f"   {line}")
        self.choices = list(buttons)
        self.titles.update(buttons)

    def jump(self, to: datetime, why: str = "") -> None:
        seconds, span = int((to - self.clock).total_seconds()), ""
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
            span += f"{seconds // size}{unit}" if seconds >= size else ""
            seconds %= size
        self.echo(f"⏩ {span or '0s'} later{why}: {self.when(to)}")
        self.clock = to


def _announces(note: str, command: Any) -> bool:
    """Whether the engine's ``note`` is the one that reports ``command`` (to show the message after it)."""
    said = {"SendTemplate": f"send template {getattr(command, 'template', '')}", "SendText": "send text",
            "SendList": "send list", "HandOff": "handed off to an agent",
            "SkipTemplate": f"not sent: {getattr(command, 'reason', '')}"}.get(type(command).__name__)
    return said is not None and note.endswith(said)


def _instant(value: Any) -> datetime:
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def _parse_answer(answer: str, choices: list[tuple[str, str]]) -> dict[str, Any]:
    """What the interactive user typed: a button number, /wait, /after 30m, or text."""
    answer = answer.strip()
    if answer.isdigit() and choices:
        if not 1 <= int(answer) <= len(choices):
            raise SimulationError(f"pick a button between 1 and {len(choices)}")
        return {"button": choices[int(answer) - 1][0]}
    if answer.startswith("/after"):
        return {"after": answer[6:].strip()} if _duration(answer[6:].strip(), "/after") else {"wait": False}
    return {"wait": True} if answer == "/wait" else {"text": answer}


def _next_entry(sim: _Sim) -> dict[str, Any]:
    if sim.replies:
        return sim.replies.popleft()
    if sim.replies is not None or sim.ask is None:
        sim.echo(f"({sim.name} does not reply)")
        return {"wait": True}
    while True:
        prompt = f"{sim.name} replies ({'a button number, ' if sim.choices else ''}text, /wait or /after 30m)"
        try:
            return _parse_answer(sim.ask(prompt), sim.choices)
        except SimulationError as exc:
            sim.echo(f"  {exc}")


def _customer_says(sim: _Sim, entry: dict[str, Any]) -> Any:
    """The event a reply becomes: a Reply for the run, a Cancel (opt-out), or None (opt-in, not for the run)."""
    sim.session = replace(sim.session, last_inbound_at=sim.clock)
    if "button" in entry:
        button = str(entry["button"])
        if button not in sim.titles:
            raise SimulationError(f"{entry.get('where', 'reply')}: button {button!r} was not offered "
                                  f"({', '.join(sim.titles) or 'no buttons yet'})")
        sim.echo(f"💬 {sim.name}: [{sim.titles[button]}] (button {button})")
        return engine.Reply(reply_id=button, text=sim.titles[button])
    text = str(entry.get("text") or "")
    sim.echo(f"💬 {sim.name}: {text}")
    intent = message_intent(text)
    if intent is None:  # a button's title typed out means the button, as in the bridge (core.flows.runs)
        typed = normalise_words(text)
        button = next((b for b, title in reversed(sim.titles.items()) if typed and normalise_words(title) == typed),
                      None)
        return engine.Reply(reply_id=button, text=text)
    out = intent != "opt_in"  # STOP / STOP ALL / START are handled before any flow sees the message
    sim.consent = replace(sim.consent, marketing_opt_in=not out, marketing_opt_out=out,
                          all_opt_out=out and (sim.consent.all_opt_out or intent == "opt_out_all"))
    sim.echo(f"consent: {intent.replace('_', ' ')} by message; " + ("the run is cancelled" if out else
                                                                   "the run keeps waiting"))
    return engine.Cancel(reason="contact opted out") if out else None


def _reply_event(sim: _Sim, state: Any) -> Any:
    """The next event for a run waiting for a reply: the customer's reply, or the timeout."""
    while True:
        entry = _next_entry(sim)
        later = sim.clock + _duration(entry.get("after", "0s"), "after")
        if entry.get("wait") or later >= state.wake_at:
            if sim.replies is not None and entry.keys() & {"button", "text"}:  # it comes after the timeout
                sim.replies.appendleft({**entry, "after": f"{int((later - state.wake_at).total_seconds())}s"})
            sim.jump(state.wake_at, ": no reply in time")
            return engine.Wake(step=state.step)
        if later > sim.clock:
            sim.jump(later)
        event = _customer_says(sim, entry) if entry.keys() & {"button", "text"} else None
        if event is not None:
            return event


def _next_event(sim: _Sim, state: Any) -> Any:
    if state.wake_at is None:
        sim.echo(f"the run waits at step '{state.step}' with no time to wake: nothing more happens")
        return None
    if state.waiting_for == "reply":
        return _reply_event(sim, state)
    sim.jump(max(state.wake_at, sim.clock))
    return engine.Wake(step=state.step)


def _intro(sim: _Sim, flow: Flow, event: Mapping[str, Any]) -> None:
    trigger = event.get("event")
    if trigger and trigger != flow.trigger.event:  # the flow still runs: the event file may be reused
        sim.echo(f"⚠ the event is {trigger!r}, but {flow.name} starts on {flow.trigger.event!r}")
    for problem in template_problems(flow.name, flow, sim.catalogue):
        sim.echo(f"⚠ {problem}")
    c, p = sim.consent, sim.policy
    consent = ("opted out of all" if c.all_opt_out else "opted out" if c.marketing_opt_out
               else "yes" if c.marketing_opt_in else "none on record")
    quiet = f"{p.quiet_start:%H:%M}-{p.quiet_end:%H:%M}" if p.quiet_start and p.quiet_end else "off"
    cap = f"{p.marketing_cap}/{p.cap_window.days}d" if p.marketing_cap is not None else "off"
    filters, passes = getattr(flow.trigger, "filters", ()), getattr(runs, "_passes", None)  # live: runs applies them
    if filters and (passes is None or not passes(flow, sim.ctx)):
        sim.echo(f"⚠ trigger filters {', '.join(f'{f.field} {f.op} {f.value}' for f in filters)} "
                 + ("not checked" if passes is None else "do not hold: live, this flow would not start"))
    sim.echo(f"▶ simulating {flow.name} v{flow.version} from {sim.when(sim.clock)}")
    sim.echo(f"  contact {sim.name}: marketing consent {consent}; time zone {sim.zone_name}; "
             f"quiet hours {quiet}; marketing cap {cap}")


def simulate(flow: Flow, event: Mapping[str, Any], replies: list | None, start: datetime, echo: Echo,
             ask: Callable[[str], str] | None = None) -> Any:
    """Play one run of ``flow`` for the contact in ``event``; returns the final ``RunState``.
    ``replies`` (see ``load_replies``) answer for the customer; without them ``ask`` does,
    and with neither the customer never replies."""
    sim = _Sim(flow, event, replies, _instant(start), echo, ask)
    _intro(sim, flow, event)
    state = sim.show(engine.start(flow=flow, ctx=sim.ctx, now=sim.clock, check=sim.check))
    for _ in range(MAX_EVENTS):
        next_event = _next_event(sim, state) if state.status == "waiting" else None
        if next_event is None:
            break
        try:
            adv = engine.advance(flow=flow, state=state, event=next_event, ctx=sim.ctx, now=sim.clock,
                                 check=sim.check)
        except engine.TransitionNotAllowed as exc:
            echo(f"engine refused {type(next_event).__name__}: {exc}")
            break
        state = sim.show(adv)
    status = state.status.replace("_", " ")
    outcome = f" ({state.outcome})" if state.outcome and state.outcome != status else ""
    echo(f"■ end: {status}{outcome} at step '{state.step or 'end'}', {sim.when(sim.clock)}")
    if state.status == "handed_off" and state.wake_at is not None:
        echo(f"  if no agent takes it by {sim.when(state.wake_at)}, the bot takes the conversation back")
    return state
