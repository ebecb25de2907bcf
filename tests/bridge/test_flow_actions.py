"""``action:`` steps: a signed webhook to another system, retried on 5xx, refused names explained."""

from __future__ import annotations

import hashlib
import hmac
import json
from importlib import resources

from flask import Flask, request
from sqlalchemy import select

from core.store.models import ActionTask
from bridge.servers import ServerThread
from tests.harness import Harness

SHIPPED = (resources.files("core.flows") / "shipped" / "appointment_reminder.yaml").read_text()


class Receiver:
    """A booking system on loopback: records what it receives, fails the first N calls with 503."""

    def __init__(self, fail_first: int = 0) -> None:
        self.calls: list[tuple[dict, str]] = []
        self.fail_first = fail_first
        app = Flask("receiver")

        @app.post("/hook")
        def hook():
            self.calls.append((json.loads(request.get_data()), request.headers.get("X-Replyflow-Signature", "")))
            if len(self.calls) <= self.fail_first:
                return "busy", 503
            return "", 204

        self.server = ServerThread(app)


def _flow_with_action(tmp_path, url: str, name: str = "webhook") -> str:
    text = SHIPPED.replace("version: 2", "version: 3").replace(
        "      vars: {booking_status: confirmed}\n",
        "      vars: {booking_status: confirmed}\n"
        "  - id: tell_booking_system\n"
        f"    action:\n      name: {name}\n"
        f"      params: {{url: \"{url}\", event: booking_confirmed, booking: \"{{{{ event.booking_id }}}}\"}}\n")
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "appointment_reminder.yaml").write_text(text)
    return str(folder)


def _confirm(h: Harness) -> None:
    h.trigger("booking_upcoming", "booking:9", data={"service": "tasting", "starts_at": "Tue", "booking_id": "9"})
    h.sandbox.customer_sends("15550002222", "Maya", button=("booking_confirm", "Confirm"))
    h.settle()


def test_action_posts_a_signed_webhook_after_a_retry(tmp_path):
    receiver = Receiver(fail_first=1)
    h = Harness(tmp_path, flows_dir=_flow_with_action(tmp_path, f"{receiver.server.url}/hook"))
    try:
        _confirm(h)
        h.settle()
        assert len(receiver.calls) == 2  # 503 first, retried
        payload, signature = receiver.calls[-1]
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        expected = "sha256=" + hmac.new(h.rt.settings.action_secret.encode(), body, hashlib.sha256).hexdigest()
        assert signature == expected
        assert payload["action"] == "booking_confirmed" and payload["params"] == {"booking": "9"}
        assert payload["contact"]["phone"] == "+15550002222" and payload["flow"] == "appointment_reminder"
        with h.session() as s:
            task = s.scalars(select(ActionTask).where(ActionTask.name == "webhook")).one()
            assert (task.status, task.attempts) == ("done", 2)
        assert "confirmed" in h.sandbox.sent[-1].body["text"]["body"]  # the flow went on
    finally:
        h.close()
        receiver.server.stop()


def test_unknown_action_fails_with_a_reason(tmp_path):
    h = Harness(tmp_path, flows_dir=_flow_with_action(tmp_path, "http://127.0.0.1:9/hook", name="woocommerce.confirm"))
    try:
        _confirm(h)
        with h.session() as s:
            task = s.scalars(select(ActionTask).where(ActionTask.name == "woocommerce.confirm")).one()
        assert task.status == "failed" and "no action named 'woocommerce.confirm'" in task.result
    finally:
        h.close()
