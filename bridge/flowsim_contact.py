"""The simulated contact of `replyflow flows simulate`: its clock, consent, session and time zone,
the real policy gate asked at the simulated time, and the transcript of what the contact is sent
(message bubbles with numbered buttons, gate refusals, time jumps)."""

from __future__ import annotations

import collections
from datetime import datetime, timezone
from typing import Any, Callable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.flowsim_inputs import SimulationError, build_context
from core.commands import HandOff, SendTemplate, SendText
from core.consent import ConsentState
from core.errors import TemplateError
from core.flows.definition import Flow
from core.gate import Decision, Policy, Verdict, decide
from core.outbox import outgoing_for
from core.session import Session
from core.templates import ButtonKind, default_catalogue, render

__all__ = ["Echo", "SimulatedContact", "instant"]

Echo = Callable[[str], None]


class SimulatedContact:
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
        self.session = Session(last_inbound_at=instant(c["last_inbound_at"]) if c.get("last_inbound_at") else None)
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


def instant(value: Any) -> datetime:
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)

