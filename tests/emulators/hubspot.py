"""A local HubSpot API for tests: the real ``hubspot-api-client`` talks to it over HTTP.

It keeps the rules that catch mistakes: a Bearer token it issued (a private-app token, or an
OAuth access token from ``/oauth/v1/token``, which expires), the request shapes of the CRM v3
endpoints replyflow uses (contacts search/create/read, contact properties, communications with
the WhatsApp channel and ``logged_from: CRM``, tasks, notes, batch create/update of at most 100
inputs), and associations to contacts that exist with the association type the object needs
(communication 81, note 202, task 204). It answers 429 with HubSpot's body when told to
(``throttle``), and shows what it stored: ``timeline(contact_id)``.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from flask import Flask, jsonify, request

__all__ = ["HubSpotEmulator", "create_hubspot_app", "CHANNELS", "ASSOCIATION"]

CHANNELS = ("WHATS_APP", "LINKEDIN_MESSAGE", "SMS")
ASSOCIATION = {"communications": 81, "notes": 202, "tasks": 204}
_OBJECTS = ("communications", "notes", "tasks")
_REQUIRED = {"communications": ("hs_communication_channel_type", "hs_communication_logged_from",
                                "hs_communication_body", "hs_timestamp"),
             "notes": ("hs_timestamp", "hs_note_body"), "tasks": ("hs_timestamp", "hs_task_subject")}
_PROPERTY_FIELDS = ("name", "label", "type", "fieldType", "groupName")


class _Refused(Exception):
    def __init__(self, status: int, message: str, category: str = "VALIDATION_ERROR", **extra: Any) -> None:
        super().__init__(message)
        self.status, self.body = status, {"status": "error", "message": message, "category": category,
                                          "correlationId": str(uuid.uuid4()), **extra}


@dataclass
class _Throttle:
    policy: str
    retry_after: int | None
    times: int


@dataclass
class HubSpotEmulator:
    portal_id: int = 24681357
    time_zone: str = "US/Eastern"
    private_tokens: set[str] = field(default_factory=lambda: {"pat-test-token"})
    client_id: str = "test-hubspot-client-id"
    client_secret: str = "test-hubspot-client-secret"
    owners: set[str] = field(default_factory=lambda: {"90000123"})
    now: Callable[[], float] = time.time  # seconds since the epoch: when OAuth tokens expire
    token_lifetime: int = 1800
    whatsapp_phone_property: bool = True  # portals with HubSpot's WhatsApp integration have hs_whatsapp_phone_number

    def __post_init__(self) -> None:
        self.contacts: dict[str, dict[str, Any]] = {}
        self.objects: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in (*_OBJECTS, "deals", "meetings")}
        self.properties: dict[str, dict[str, Any]] = {
            name: {"name": name, "type": "string", "fieldType": "text", "groupName": "contactinformation",
                   "hubspotDefined": True}
            for name in ("phone", "mobilephone", "email", "firstname", "lastname", "hubspot_owner_id", "hs_object_id",
                         *(("hs_whatsapp_phone_number",) if self.whatsapp_phone_property else ()))}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every authenticated call
        self.on_call: list[Callable[[str, str], None]] = []  # run with (method, path) while a call is answered
        self.codes: dict[str, str] = {}  # authorization code -> redirect_uri
        self.refresh_tokens: set[str] = set()
        self.oauth_tokens: dict[str, float] = {}  # access token -> expires at
        self._throttles: list[_Throttle] = []
        self._ids = itertools.count(72100000001)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ arranging

    def add_contact(self, contact_id: str, **properties: str) -> str:
        self.contacts[contact_id] = {"id": contact_id, "properties": {"hs_object_id": contact_id, **properties}}
        return contact_id

    def add_object(self, kind: str, object_id: str, properties: dict[str, str], contacts: tuple[str, ...] = ()) -> None:
        self.objects[kind][object_id] = {"id": object_id, "properties": dict(properties),
                                         "associations": [(c, 0) for c in contacts]}

    def throttle(self, policy: str = "TEN_SECONDLY_ROLLING", *, retry_after: int | None = None, times: int = 1) -> None:
        """The next ``times`` calls are answered 429 with ``policy`` (and Retry-After if given)."""
        self._throttles.append(_Throttle(policy, retry_after, times))

    def issue_code(self, redirect_uri: str) -> str:
        code = f"code-{uuid.uuid4().hex[:12]}"
        self.codes[code] = redirect_uri
        return code

    # ------------------------------------------------------------------ looking

    def timeline(self, contact_id: str) -> list[dict[str, Any]]:
        """What the contact record shows: communications, tasks and notes associated to it, in time order."""
        entries = [{"type": kind, "id": oid, "properties": dict(o["properties"])}
                   for kind in _OBJECTS for oid, o in self.objects[kind].items()
                   if any(c == contact_id for c, _ in o["associations"])]
        return sorted(entries, key=lambda e: (e["properties"].get("hs_timestamp", ""), int(e["id"])))

    def calls(self, method: str, path_prefix: str) -> int:
        return sum(1 for m, p in self.requests if m == method and p.startswith(path_prefix))

    # ------------------------------------------------------------------ the rules

    def authenticate(self, header: str | None) -> None:
        token = header[7:] if header and header.startswith("Bearer ") else None
        if token is None:
            raise _Refused(401, "Authentication credentials not found.", "INVALID_AUTHENTICATION")
        if token in self.private_tokens:
            return
        expires = self.oauth_tokens.get(token)
        if expires is None:
            raise _Refused(401, "The OAuth token used to make this call is not valid.", "INVALID_AUTHENTICATION")
        if expires <= self.now():
            raise _Refused(401, "The OAuth token used to make this call expired.", "EXPIRED_AUTHENTICATION")

    def check_throttle(self) -> tuple[dict, int, dict] | None:
        if not self._throttles:
            return None
        t = self._throttles[0]
        t.times -= 1
        if t.times <= 0:
            self._throttles.pop(0)
        body = {"status": "error", "message": f"You have reached your {t.policy.lower()} limit.",
                "errorType": "RATE_LIMIT", "correlationId": str(uuid.uuid4()), "policyName": t.policy,
                "requestId": str(uuid.uuid4())}
        headers = {"X-HubSpot-RateLimit-Interval-Milliseconds": "10000", "X-HubSpot-RateLimit-Max": "100",
                   "X-HubSpot-RateLimit-Remaining": "0"}
        if t.retry_after is not None:
            headers["Retry-After"] = str(t.retry_after)
        return body, 429, headers

    def _associations(self, kind: str, raw: Any) -> list[tuple[str, int]]:
        if not isinstance(raw, list) or not raw:
            raise _Refused(400, f"{kind}: an association to the contact is required")
        out = []
        for a in raw:
            to = (a.get("to") or {}).get("id") if isinstance(a, dict) else None
            types = a.get("types") if isinstance(a, dict) else None
            if to not in self.contacts:
                raise _Refused(400, f"association to unknown contact {to!r}")
            if not isinstance(types, list) or not types or any(
                    t.get("associationCategory") != "HUBSPOT_DEFINED" or t.get("associationTypeId") != ASSOCIATION[kind]
                    for t in types):
                raise _Refused(400, f"{kind} -> contact needs HUBSPOT_DEFINED type {ASSOCIATION[kind]}: {types!r}")
            out.append((to, ASSOCIATION[kind]))
        return out

    def _properties(self, kind: str, props: Any, *, create: bool) -> dict[str, str]:
        if not isinstance(props, dict) or not all(isinstance(v, str) for v in props.values()):
            raise _Refused(400, "properties: expected an object of string values")
        if create:
            missing = [p for p in _REQUIRED[kind] if not props.get(p)]
            if missing:
                raise _Refused(400, f"{kind}: missing required properties {missing}")
        if kind == "communications":
            if "hs_communication_channel_type" in props and props["hs_communication_channel_type"] not in CHANNELS:
                raise _Refused(400, f"hs_communication_channel_type must be one of {CHANNELS}")
            if "hs_communication_logged_from" in props and props["hs_communication_logged_from"] != "CRM":
                raise _Refused(400, "hs_communication_logged_from must be CRM")
        if props.get("hubspot_owner_id") and props["hubspot_owner_id"] not in self.owners:
            raise _Refused(400, f"unknown owner {props['hubspot_owner_id']}")
        return dict(props)

    def create(self, kind: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _Refused(400, "expected a JSON object")
        props = self._properties(kind, body.get("properties"), create=True)
        assoc = self._associations(kind, body.get("associations"))
        with self._lock:
            oid = str(next(self._ids))
        self.objects[kind][oid] = {"id": oid, "properties": props, "associations": assoc}
        return self._public(kind, oid, body.get("objectWriteTraceId"))

    def update(self, kind: str, oid: Any, body: Any) -> dict[str, Any]:
        if oid not in self.objects[kind]:
            raise _Refused(404, f"{kind} {oid} not found", "OBJECT_NOT_FOUND")
        props = self._properties(kind, (body or {}).get("properties"), create=False)
        self.objects[kind][oid]["properties"].update(props)
        return self._public(kind, oid, (body or {}).get("objectWriteTraceId"))

    def _public(self, kind: str, oid: str, trace: str | None = None) -> dict[str, Any]:
        out = {"id": oid, "properties": dict(self.objects[kind][oid]["properties"]),
               "createdAt": "2025-11-03T14:05:02.118Z", "updatedAt": "2025-11-03T14:05:02.118Z", "archived": False}
        if trace:
            out["objectWriteTraceId"] = trace
        return out

    def batch(self, kind: str, action: str, body: Any) -> dict[str, Any]:
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not inputs or len(inputs) > 100:
            raise _Refused(400, "inputs: between 1 and 100 objects")
        if action == "update":
            unknown = [i.get("id") for i in inputs if i.get("id") not in self.objects[kind]]
            if unknown:
                raise _Refused(404, f"{kind} not found: {unknown}", "OBJECT_NOT_FOUND")
            results = [self.update(kind, i["id"], i) for i in inputs]
        else:
            for i in inputs:  # all or nothing: every input is checked before any is stored
                if not isinstance(i, dict):
                    raise _Refused(400, "each input must be an object")
                self._properties(kind, i.get("properties"), create=True)
                self._associations(kind, i.get("associations"))
            results = [self.create(kind, i) for i in inputs]
        # HubSpot does not promise the order of results: callers map them by objectWriteTraceId
        return {"status": "COMPLETE", "results": list(reversed(results)),
                "startedAt": "2025-11-03T14:05:02.000Z", "completedAt": "2025-11-03T14:05:02.118Z"}

    def search_contacts(self, body: Any) -> dict[str, Any]:
        groups = body.get("filterGroups") if isinstance(body, dict) else None
        if not isinstance(groups, list) or not groups or len(groups) > 5:
            raise _Refused(400, "filterGroups: between 1 and 5 groups")
        if any(not isinstance(g.get("filters"), list) or len(g["filters"]) > 6 for g in groups):
            raise _Refused(400, "a filter group holds at most 6 filters")
        if not 0 < int(body.get("limit", 10)) <= 100:
            raise _Refused(400, "limit: at most 100")

        def matches(props: dict, f: dict) -> bool:
            if f.get("propertyName") not in self.properties:
                raise _Refused(400, f"There was a problem with the request: property {f.get('propertyName')!r} "
                                    "does not exist")
            if f.get("operator") == "EQ" and isinstance(f.get("value"), str):
                return props.get(f["propertyName"]) == f["value"]
            if f.get("operator") == "IN" and isinstance(f.get("values"), list) and f["values"]:
                return props.get(f["propertyName"]) in f["values"]
            raise _Refused(400, f"unsupported filter {f!r}")

        found = [c for c in self.contacts.values()
                 if any(all(matches(c["properties"], f) for f in g["filters"]) for g in groups)]
        wanted = body.get("properties") or []
        results = [{"id": c["id"], "properties": {k: c["properties"].get(k) for k in ["hs_object_id", *wanted]},
                    "createdAt": "2025-11-03T14:00:00Z", "updatedAt": "2025-11-03T14:00:00Z", "archived": False}
                   for c in found]
        return {"total": len(results), "results": results[: int(body.get("limit", 10))]}

    def create_contact(self, body: Any) -> dict[str, Any]:
        props = (body or {}).get("properties")
        if not isinstance(props, dict) or not any(props.get(k) for k in ("email", "phone", "mobilephone")):
            raise _Refused(400, "a contact needs an email or a phone")
        with self._lock:
            cid = str(151000000900 + len(self.contacts))
        self.add_contact(cid, **{k: str(v) for k, v in props.items()})
        return {"id": cid, "properties": dict(self.contacts[cid]["properties"]), "archived": False,
                "createdAt": "2025-11-03T14:00:00Z", "updatedAt": "2025-11-03T14:00:00Z"}

    def read(self, kind: str, oid: str, properties: list[str], associations: list[str]) -> dict[str, Any]:
        source = self.contacts if kind == "contacts" else self.objects.get(kind)
        if source is None or oid not in source:
            raise _Refused(404, f"{kind} {oid} not found", "OBJECT_NOT_FOUND")
        obj = source[oid]
        props = {k: v for k, v in obj["properties"].items() if not properties or k in properties}
        out = {"id": oid, "properties": props, "archived": False,
               "createdAt": "2025-11-03T14:00:00Z", "updatedAt": "2025-11-03T14:00:00Z"}
        if "contacts" in associations and kind != "contacts":
            out["associations"] = {"contacts": {"results": [
                {"id": c, "type": f"{kind[:-1]}_to_contact"} for c, _ in obj.get("associations", [])]}}
        return out

    def create_property(self, body: Any) -> dict[str, Any]:
        missing = [f for f in _PROPERTY_FIELDS if not (body or {}).get(f)]
        if missing:
            raise _Refused(400, f"property: missing {missing}")
        if body["name"] in self.properties:
            raise _Refused(409, f"property {body['name']} already exists", "OBJECT_ALREADY_EXISTS")
        self.properties[body["name"]] = dict(body)
        return dict(body)

    def token(self, form: dict[str, str]) -> dict[str, Any]:
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            raise _Refused(400, "invalid client credentials", "BAD_CLIENT_ID")
        grant = form.get("grant_type")
        if grant == "authorization_code":
            if self.codes.pop(form.get("code", ""), None) != form.get("redirect_uri"):
                raise _Refused(400, "missing or unknown auth code, or redirect_uri mismatch", "BAD_AUTH_CODE")
        elif grant == "refresh_token":
            if form.get("refresh_token") not in self.refresh_tokens:
                raise _Refused(400, "missing or unknown refresh token", "BAD_REFRESH_TOKEN")
        else:
            raise _Refused(400, f"unsupported grant_type {grant!r}", "BAD_GRANT_TYPE")
        access, refresh = f"oauth-{uuid.uuid4().hex[:16]}", form.get("refresh_token") or f"rt-{uuid.uuid4().hex[:16]}"
        self.oauth_tokens[access] = self.now() + self.token_lifetime
        self.refresh_tokens.add(refresh)
        return {"access_token": access, "refresh_token": refresh, "expires_in": self.token_lifetime,
                "token_type": "bearer"}


def _list(name: str) -> list[str]:
    return [v for raw in request.args.getlist(name) for v in raw.split(",") if v]


def create_hubspot_app(emu: HubSpotEmulator) -> Flask:
    app = Flask("hubspot-emulator")

    @app.errorhandler(_Refused)
    def refused(exc: _Refused):
        return jsonify(exc.body), exc.status

    @app.before_request
    def gate():
        for watcher in emu.on_call:
            watcher(request.method, request.path)
        if request.path.startswith("/oauth/v1/"):  # the token is the credential (form or path)
            return None
        emu.authenticate(request.headers.get("Authorization"))
        emu.requests.append((request.method, request.path))
        throttled = emu.check_throttle()
        if throttled is not None:
            body, status, headers = throttled
            return jsonify(body), status, headers
        return None

    @app.post("/oauth/v1/token")
    def token():
        if request.mimetype != "application/x-www-form-urlencoded":
            raise _Refused(400, "expected a form-encoded body")
        return jsonify(emu.token(request.form.to_dict()))

    @app.get("/oauth/v1/access-tokens/<token>")
    def token_info(token: str):
        return jsonify({"hub_id": emu.portal_id, "token": token, "app_id": 3141592, "token_type": "access",
                        "scopes": ["crm.objects.contacts.read"], "expires_in": 1800, "user": "admin@example.test"})

    @app.get("/account-info/v3/details")
    def account():
        return jsonify({"portalId": emu.portal_id, "timeZone": emu.time_zone, "accountType": "STANDARD",
                        "companyCurrency": "USD", "uiDomain": "app.hubspot.com", "dataHostingLocation": "na1"})

    @app.post("/crm/v3/objects/contacts/search")
    def search():
        return jsonify(emu.search_contacts(request.get_json(silent=True)))

    @app.post("/crm/v3/objects/contacts")
    def create_contact():
        return jsonify(emu.create_contact(request.get_json(silent=True))), 201

    @app.post("/crm/v3/objects/contacts/batch/update")
    def update_contacts():
        inputs = (request.get_json(silent=True) or {}).get("inputs")
        if not isinstance(inputs, list) or not 0 < len(inputs) <= 100:
            raise _Refused(400, "inputs: between 1 and 100 objects")
        for item in inputs:
            if item.get("id") not in emu.contacts:
                raise _Refused(404, f"contact {item.get('id')} not found", "OBJECT_NOT_FOUND")
            emu.contacts[item["id"]]["properties"].update(item.get("properties") or {})
        return jsonify({"status": "COMPLETE", "results": [{"id": i["id"], "properties": i.get("properties")}
                                                          for i in inputs]})

    @app.get("/crm/v3/objects/<kind>/<oid>")
    def read(kind: str, oid: str):
        return jsonify(emu.read(kind, oid, _list("properties"), _list("associations")))

    @app.post("/crm/v3/objects/<kind>")
    def create(kind: str):
        if kind not in _OBJECTS:
            raise _Refused(404, f"no object type {kind}", "OBJECT_NOT_FOUND")
        return jsonify(emu.create(kind, request.get_json(silent=True))), 201

    @app.patch("/crm/v3/objects/<kind>/<oid>")
    def update(kind: str, oid: str):
        if kind not in _OBJECTS:
            raise _Refused(404, f"no object type {kind}", "OBJECT_NOT_FOUND")
        return jsonify(emu.update(kind, oid, request.get_json(silent=True)))

    @app.post("/crm/v3/objects/<kind>/batch/<action>")
    def batch(kind: str, action: str):
        if kind not in _OBJECTS or action not in ("create", "update"):
            raise _Refused(404, f"no batch {action} for {kind}", "OBJECT_NOT_FOUND")
        result = emu.batch(kind, action, request.get_json(silent=True))
        return jsonify(result), 201 if action == "create" else 200

    @app.get("/crm/v3/properties/contacts/<name>")
    def read_property(name: str):
        if name not in emu.properties:
            raise _Refused(404, f"property {name} does not exist", "OBJECT_NOT_FOUND")
        return jsonify(emu.properties[name])

    @app.post("/crm/v3/properties/contacts")
    def create_property():
        return jsonify(emu.create_property(request.get_json(silent=True))), 201

    return app
