"""A whole replyflow on loopback for tests: the bridge, the WhatsApp sandbox, a manual clock,
and the job runner of your choice (in-process, or RQ on a real Redis worked by SimpleWorker)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import httpx

from connectors.shopify.events import sign as shopify_sign
from core.clock import ManualClock
from core.store import session_scope
from bridge.app import create_app
from bridge.config import Settings
from bridge.queue import InProcessRunner, RQRunner
from bridge.runtime import build_runtime, set_runtime
from bridge.sandbox import Sandbox, create_sandbox_app
from bridge.servers import ServerThread

FIXTURES = Path(__file__).parent / "fixtures"
SHOP_SECRET = "test-shopify-client-secret"
APP_SECRET = "test-app-secret"
API_TOKEN = "test-agent-token"
START = datetime(2025, 11, 3, 14, 2, 11, tzinfo=timezone.utc)


def shopify_fixture(name: str) -> tuple[bytes, dict[str, str]]:
    body = (FIXTURES / "shopify" / f"{name}.json").read_bytes()
    headers = json.loads((FIXTURES / "shopify" / f"{name}.headers.json").read_text())
    return body, headers


def triggered_at(name: str) -> datetime:
    _, headers = shopify_fixture(name)
    return datetime.fromisoformat(headers["X-Shopify-Triggered-At"][:26] + "+00:00")


class Harness:
    def __init__(self, tmp_path: Path, *, runner: str = "inprocess", redis_url: str | None = None,
                 database_url: str | None = None, start: datetime = START, flows_dir: str | None = None,
                 templates_dir: str | None = None, settings: dict | None = None,
                 overrides: dict | None = None) -> None:
        self.clock = ManualClock(start)
        settings = Settings(database_url=database_url or f"sqlite:///{tmp_path / 'replyflow.db'}",
                            whatsapp_app_secrets=(APP_SECRET,), shopify_webhook_secrets=(SHOP_SECRET,),
                            api_token=API_TOKEN, cart_abandon_delay="1h", flows_dir=flows_dir,
                            templates_dir=templates_dir, redis_url=redis_url,
                            # a sandbox on PostgreSQL keeps its generated key in the working folder: not in tests
                            **({"secret_key": "harness-secret-key"} if database_url else {}), **(settings or {}))
        settings = replace(settings, **(overrides or {}))  # e.g. a connector's secrets, the public URL
        self.sandbox = Sandbox(clock=self.clock, app_secret=APP_SECRET, access_token=settings.whatsapp_access_token,
                               phone_number_id=settings.whatsapp_phone_number_id)
        self.sandbox_server = ServerThread(create_sandbox_app(self.sandbox))
        settings = replace(settings, whatsapp_api_base=self.sandbox_server.url)
        self.runner_kind = runner
        queue = InProcessRunner(retry_intervals=(0.05, 0.1)) if runner == "inprocess" else RQRunner(redis_url)
        self.rt = build_runtime(settings, clock=self.clock, queue=queue)
        self.server = ServerThread(create_app(self.rt))
        self.sandbox.webhook_url = f"{self.server.url}/webhooks/whatsapp"
        self.http = httpx.Client(base_url=self.server.url, timeout=10)

    # ------------------------------------------------------------------ driving

    def settle(self) -> None:
        if self.runner_kind == "inprocess":
            self.rt.queue.drain()
            return
        from rq import SimpleWorker
        from rq.serializers import JSONSerializer

        class BurstWorker(SimpleWorker):
            def subscribe(self) -> None:
                """No command channel: a burst worker takes no commands, and stopping rq's pubsub
                thread can wait out its 60-second poll (redis-py 8), stalling a test for a minute."""

        queues = list(self.rt.queue.queues.values())
        for _ in range(20):  # jobs enqueue jobs: work until every queue is empty
            if not any(q.count for q in queues):
                return
            BurstWorker(queues, connection=self.rt.queue.redis, serializer=JSONSerializer).work(burst=True)
        raise AssertionError("RQ queues did not empty")

    def sweep(self) -> None:
        self.rt.queue.enqueue("sweep")
        self.settle()

    def at(self, moment: datetime) -> None:
        self.clock.set(moment)
        self.sweep()

    def shopify(self, name: str, *, body: bytes | None = None, headers: dict | None = None,
                secret: str | None = SHOP_SECRET, settle: bool = True) -> httpx.Response:
        fixture_body, fixture_headers = shopify_fixture(name)
        body = fixture_body if body is None else body
        headers = {**fixture_headers, **(headers or {})}
        headers.pop("X-Shopify-Hmac-Sha256", None)
        if secret is not None:
            headers["X-Shopify-Hmac-Sha256"] = shopify_sign(body, secret)
        response = self.http.post("/webhooks/shopify", content=body, headers=headers)
        if settle:
            self.settle()
        return response

    def whatsapp(self, body: bytes, *, signature: str | None = "sign", settle: bool = True) -> httpx.Response:
        from connectors.whatsapp.events import sign

        headers = {"Content-Type": "application/json"}
        if signature == "sign":
            headers["X-Hub-Signature-256"] = sign(body, APP_SECRET)
        elif signature is not None:
            headers["X-Hub-Signature-256"] = signature
        response = self.http.post("/webhooks/whatsapp", content=body, headers=headers)
        if settle:
            self.settle()
        return response

    def status_webhook(self, wamid: str, state: str, errors: list | None = None, *,
                       recipient: str = "15550002222") -> bytes:
        """A status webhook body for ``wamid`` in the Cloud API's shape (errors for ``failed``)."""
        status = {"id": wamid, "status": state, "timestamp": str(int(self.clock.now().timestamp())),
                  "recipient_id": recipient}
        if errors:
            status["errors"] = errors
        return self.sandbox._envelope("messages", {"statuses": [status]})

    def trigger(self, event: str, subject: str, *, phone: str = "+15550002222", first_name: str = "Maya",
                consent: str | None = None, data: dict | None = None) -> httpx.Response:
        body = {"event": event, "subject": subject, "contact": {"phone": phone, "first_name": first_name},
                "data": data or {}}
        if consent:
            body["consent"] = {"marketing": consent, "evidence": "ticked the box on the sign-up form"}
        response = self.api("POST", "/triggers", json=body)
        self.settle()
        return response

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = {"Authorization": f"Bearer {API_TOKEN}", **kwargs.pop("headers", {})}
        return self.http.request(method, f"/api{path}", headers=headers, **kwargs)

    def session(self):
        return session_scope(self.rt.db)

    def close(self) -> None:
        self.http.close()
        self.server.stop()
        self.sandbox_server.stop()
        self.rt.close()
        set_runtime(None)



