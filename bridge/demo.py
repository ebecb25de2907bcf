"""`replyflow demo`: the cart-recovery story, end to end, through the bridge's real HTTP endpoints.

Everything runs on this machine: the bridge (SQLite in a temporary folder, the in-process job
runner), the WhatsApp sandbox (the real Cloud API client talks to it over HTTP), and the shop
(signed Shopify webhooks from bundled payloads). Time is an accelerated clock: the demo moves it
forward instead of waiting an hour.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path

import httpx
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from connectors.shopify.events import sign as shopify_sign
from core.clock import ManualClock
from core.metrics import report
from core.store import session_scope
from core.store.models import Cart, Conversation, FlowRun, Message, Workspace
from bridge.app import create_app
from bridge.config import Settings
from bridge.queue import InProcessRunner
from bridge.report_text import FIGURE_COLUMNS
from bridge.runtime import build_runtime, set_runtime
from bridge.sandbox import Sandbox, create_sandbox_app
from bridge.servers import ServerThread

__all__ = ["run_demo", "DemoFailed", "time_passes"]

SHOP_SECRET = "demo-shopify-secret"
API_TOKEN = "demo-agent-token"
MAYA = ("15550002222", "Maya Lindqvist")
JONAS = ("15550003333", "Jonas Brandt")
MAYA_CART = "7d0c3b5e2a914f6c8e1d9b4a6f2c0e85"
JONAS_CART = "5e81c2d09b7a4f3e8d6c1b2a3f4e5d60"


class DemoFailed(AssertionError):
    """The story did not go as it should: the demo exits non-zero."""


def _payload(name: str) -> tuple[bytes, dict[str, str]]:
    folder = resources.files("bridge.demo_data")
    body = (folder / f"{name}.json").read_bytes()
    headers = json.loads((folder / f"{name}.headers.json").read_text())
    headers["X-Shopify-Hmac-Sha256"] = shopify_sign(body, SHOP_SECRET)
    return body, headers


def _triggered_at(name: str) -> datetime:
    _, headers = _payload(name)
    return datetime.fromisoformat(headers["X-Shopify-Triggered-At"][:26] + "+00:00")


def time_passes(minutes: float) -> str:
    """``"1 minute passes"``, ``"25 hours pass"``: hours from two hours on, rounded."""
    count, unit = (round(minutes / 60), "hour") if minutes >= 120 else (round(minutes), "minute")
    return f"1 {unit} passes" if count == 1 else f"{count} {unit}s pass"


class _Story:
    def __init__(self, console: Console, workdir: Path) -> None:
        self.console = console
        self.clock = ManualClock(_triggered_at("checkouts_create"))
        base = Settings(database_url=f"sqlite:///{workdir / 'demo.db'}", shopify_webhook_secrets=(SHOP_SECRET,),
                        api_token=API_TOKEN, cart_abandon_delay="1h")
        self.sandbox = Sandbox(clock=self.clock, app_secret=base.whatsapp_app_secrets[0],
                               access_token=base.whatsapp_access_token, phone_number_id=base.whatsapp_phone_number_id)
        self.sandbox_server = ServerThread(create_sandbox_app(self.sandbox))
        settings = replace(base, whatsapp_api_base=self.sandbox_server.url)
        self.runner = InProcessRunner(retry_intervals=(0.2, 0.5))
        self.rt = build_runtime(settings, clock=self.clock, queue=self.runner)
        self.bridge = ServerThread(create_app(self.rt))
        self.sandbox.webhook_url = f"{self.bridge.url}/webhooks/whatsapp"
        self.http = httpx.Client(base_url=self.bridge.url, timeout=10)

    def close(self) -> None:
        self.http.close()
        self.bridge.stop()
        self.sandbox_server.stop()
        self.rt.close()
        set_runtime(None)

    # ----------------------------------------------------------- helpers

    def say(self, when: str, text: str) -> None:
        self.console.print(f"[dim]{self.clock.now():%d %b %H:%M}[/dim] [bold]{when}[/bold] {text}")

    def settle(self) -> None:
        self.runner.drain()

    def advance_to(self, moment: datetime) -> None:
        minutes = (moment - self.clock.now()).total_seconds() / 60
        self.clock.set(moment)
        if minutes >= 1:
            self.console.print(f"[dim]   … {time_passes(minutes)} (accelerated clock)[/dim]")
        self.runner.enqueue("sweep")
        self.settle()

    def shop(self, name: str) -> None:
        body, headers = _payload(name)
        response = self.http.post("/webhooks/shopify", content=body, headers=headers)
        sent = json.loads(body)
        who = ((sent.get("customer") or {}).get("first_name") or (sent.get("billing_address") or {}).get("first_name"))
        self.say("shop", f"{who + chr(39) + 's ' if who else ''}{headers['X-Shopify-Topic']} → bridge answered "
                         f"{response.status_code} {response.json()}")
        if response.status_code != 200:
            raise DemoFailed(f"shopify webhook refused: {response.text}")
        self.settle()

    def expect(self, condition: bool, message: str) -> None:
        if not condition:
            raise DemoFailed(message)

    def db(self):
        return session_scope(self.rt.db)

    # ----------------------------------------------------------- the story

    def run(self) -> None:
        self.console.rule("[bold]replyflow demo: abandoned-cart recovery over WhatsApp")
        self.shop("checkouts_create")
        self.advance_to(_triggered_at("checkouts_create_jonas"))
        self.shop("checkouts_create_jonas")
        self.advance_to(_triggered_at("checkouts_update"))
        self.shop("checkouts_update")
        with self.db() as s:
            cart = s.query(Cart).filter_by(token=MAYA_CART).one()
            run = s.query(FlowRun).filter_by(subject=f"cart:{MAYA_CART}").one()
            self.say("state", f"Maya's cart {cart.token[:8]}… {cart.total} {cart.currency}, status {cart.status}; "
                     f"run #{run.id} {run.flow_name} {run.status} at '{run.step}' until {run.wake_at:%H:%M:%S}")
            self.expect(cart.total == 112 and run.step == "wait_for_abandonment", "cart or run not as expected")
            wake_at = run.wake_at
        self.advance_to(wake_at + timedelta(seconds=20))
        self.expect(len(self.sandbox.sent) == 2, f"expected two reminders, sandbox has {len(self.sandbox.sent)}")
        self.show_whatsapp(MAYA[0])
        self.sandbox.deliver_statuses("delivered")
        self.settle()
        self.customer_taps()
        self.customer_stops()
        self.agent_replies()
        self.advance_to(self.clock.now() + timedelta(minutes=1))
        self.sandbox.deliver_statuses("read")
        self.settle()
        self.advance_to(max(self.clock.now(), _triggered_at("orders_create")))
        self.expect(len(self.sandbox.sent) == 4, "the bot must stay quiet while an agent owns the conversation")
        self.say("bot", "stays quiet with Maya: the agent owns the conversation")
        self.shop("orders_create")
        self.advance_to(self.clock.now() + timedelta(hours=25))
        self.expect(len(self.sandbox.sent) == 4, "no second reminder may follow an order or a STOP")
        self.say("bot", "a day later: no second reminder (Maya ordered, Jonas opted out)")
        self.report()

    def customer_stops(self) -> None:
        self.clock.advance(timedelta(minutes=1))
        response = self.sandbox.customer_sends(JONAS[0], JONAS[1], text="STOP")
        self.say("customer", f"Jonas replies “STOP” → bridge answered {response.status_code}")
        self.settle()
        with self.db() as s:
            run = s.query(FlowRun).filter_by(subject=f"cart:{JONAS_CART}").one()
            self.say("state", f"Jonas's run #{run.id}: {run.status} ({run.outcome}); "
                     f"confirmation: “{self.sandbox.sent[-1].body['text']['body'][:60]}…”")
            self.expect(run.status == "cancelled", "STOP must cancel the run at once")

    def show_whatsapp(self, wa_id: str) -> None:
        body = next(m.body for m in self.sandbox.sent if m.to == f"+{wa_id}")
        with self.db() as s:
            msg = s.query(Message).filter(Message.wamid == next(
                m.wamid for m in self.sandbox.sent if m.to == f"+{wa_id}")).one()
            text, buttons = msg.body, [label for _payload, label in msg.request.get("buttons", [])]
        shown = escape(f"{text}\n\n" + "  ".join(f"[ {b} ]" for b in buttons))
        self.console.print(Panel(shown, title=f"WhatsApp → +{wa_id[:-4]}····  template "
                                 f"{body['template']['name']}", width=72))

    def customer_taps(self) -> None:
        self.clock.advance(timedelta(minutes=2))
        response = self.sandbox.customer_sends(MAYA[0], MAYA[1], button=("cart_help", "I need help"))
        self.say("customer", f"taps “I need help” → bridge answered {response.status_code}")
        self.settle()
        with self.db() as s:
            conv = s.query(Conversation).filter_by(mode="agent").one()
            self.say("state", f"Maya's conversation #{conv.id} now owned by: {conv.mode} ({conv.handoff_reason})")
            self.expect(conv.mode == "agent", "the conversation was not handed off")
            self.conversation_id = conv.id

    def agent_replies(self) -> None:
        self.clock.advance(timedelta(minutes=2))
        text = "Hi Maya, Sam here. The teapot ships in 2 days; I can add free shipping if you complete the order today."
        response = self.http.post(f"/api/conversations/{self.conversation_id}/messages",
                                  json={"text": text, "agent": "sam"},
                                  headers={"Authorization": f"Bearer {API_TOKEN}"})
        self.say("agent", f"sam replies inside the window → API answered {response.status_code}")
        self.expect(response.status_code == 202, f"agent reply refused: {response.text}")
        self.settle()

    def report(self) -> None:
        self.console.rule("Maya's conversation, as the agent API returns it")
        response = self.http.get(f"/api/conversations/{self.conversation_id}",
                                 headers={"Authorization": f"Bearer {API_TOKEN}"})
        for m in response.json()["messages"]:
            who = {"in": "customer", "out": m["author"], "sys": "·"}[m["direction"]]
            ticks = f" [{m['status']}]" if m["direction"] == "out" else ""
            line = (m["body"] or "").splitlines()[0]
            line = line if len(line) <= 48 else line[:47] + "…"
            self.console.print(f"[bold]{who:>18}[/bold] {escape(line)}[dim]{escape(ticks)}[/dim]")
        with self.db() as s:
            ws = s.query(Workspace).filter_by(slug="default").one()
            figures = report(s, ws.id)  # what `replyflow report` and the inbox's metrics page show
            cart = s.query(Cart).filter_by(token=MAYA_CART).one()
            statuses = [m.status for m in s.query(Message).filter(Message.direction == "out",
                                                                  Message.conversation_id == self.conversation_id)]
        self.expect(cart.status == "recovered", f"cart should be recovered, is {cart.status}")
        self.expect(statuses == ["read", "read"], f"statuses should have reached read, got {statuses}")
        [flow] = figures.flows
        self.expect((flow.runs, flow.sent, flow.handoffs, flow.opt_outs, flow.carts_recovered) == (2, 2, 1, 1, 1),
                    f"the figures do not tell the story: {flow}")
        groups = (*figures.flows, *figures.templates)
        table = Table(title="metrics, computed from the records (as `replyflow report` shows them)")
        table.add_column("figure")
        for f in groups:
            table.add_column(Text(f.key), justify="right")
        for column in FIGURE_COLUMNS:
            table.add_row(column.label, *(Text(column.cell(f)) for f in groups))
        self.console.print(table)


def run_demo(console: Console | None = None) -> None:
    console = console or Console()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the demo prints its own story
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="replyflow-demo-") as workdir:
        story = _Story(console, Path(workdir))
        try:
            story.run()
        finally:
            story.close()
    console.print(f"[green]demo finished in {time.perf_counter() - started:.2f}s (wall clock)[/green]")



