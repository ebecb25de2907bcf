"""A scripted WhatsApp Cloud API for the bulk sender's tests, served on loopback.

Per recipient, the answers to give in turn (the last one repeats): ``OK`` (a send response with
a fresh wamid), ``error(status, fixture body)`` (a Graph error, e.g. a recorded fixture), or
``LATE`` (the message is recorded as sent, then the answer comes ``late_s`` seconds later: after
the client gave up). Every request is recorded in ``requests``; ``accepted`` lists what was sent.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from flask import Flask, Response, jsonify, request

__all__ = ["ScriptedCloudApi", "OK", "LATE", "error"]

OK = ("ok",)
LATE = ("late",)


def error(status: int, body: bytes) -> tuple:
    return ("error", status, body)


class ScriptedCloudApi:
    def __init__(self, script: dict[str, list[tuple]] | None = None, *, late_s: float = 1.0) -> None:
        self.script = {to: list(answers) for to, answers in (script or {}).items()}
        self.late_s = late_s
        self.requests: list[tuple[str, dict]] = []
        self.accepted: list[tuple[str, str, dict]] = []  # (wamid, to, body)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def _next(self, to: str) -> tuple:
        answers = self.script.get(to) or [OK]
        return answers.pop(0) if len(answers) > 1 else answers[0]

    def answer(self, body: dict[str, Any]) -> tuple[Any, int]:
        to = str(body.get("to") or body.get("recipient") or "")
        with self._lock:
            self.requests.append((to, body))
            answer = self._next(to)
            if answer[0] == "error":
                return Response(answer[2], status=answer[1], mimetype="application/json"), answer[1]
            wamid = f"wamid.SCRIPTED{next(self._ids):08d}"
            self.accepted.append((wamid, to, body))
        if answer is LATE:
            time.sleep(self.late_s)
        return jsonify({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
                        "messages": [{"id": wamid, "message_status": "accepted"}]}), 200

    def app(self) -> Flask:
        app = Flask("scripted-cloud-api")

        @app.post("/<version>/<phone_number_id>/messages")
        def send(version: str, phone_number_id: str):
            response, status = self.answer(request.get_json(silent=True) or {})
            return response if isinstance(response, Response) else (response, status)

        return app
