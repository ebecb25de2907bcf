"""Parsing inbound webhook payloads into typed events: replyflow's parser beside pywa's (a
bench-only dependency: ``pip install pywa``) and plain ``json.loads``, on the same bodies.

    .venv/bin/python bench/parse.py [ROUNDS]

pywa 4.5 expects a business-scoped ``user_id`` on every contact, and a contact on every status
(its parser raises KeyError on payloads without them, such as phone-only ones or Meta's own status
examples); for a like-for-like run, the bodies both parsers get in the comparison carry them.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.whatsapp.events import parse_webhook  # noqa: E402

NAMES = ["inbound_text", "inbound_button_reply", "inbound_list_reply", "inbound_template_quick_reply",
         "inbound_image", "inbound_location", "status_sent", "status_delivered", "status_read",
         "status_failed_131047"]


def _bodies() -> list[bytes]:
    return [(ROOT / "tests" / "fixtures" / "whatsapp" / f"{n}.json").read_bytes() for n in NAMES]


def _with_user_ids(body: bytes) -> bytes:
    data = json.loads(body)
    for change in data["entry"][0]["changes"]:
        value = change["value"]
        if "statuses" in value and "contacts" not in value:  # pywa also wants a contact on statuses
            value["contacts"] = [{"profile": {"name": "x"}, "wa_id": value["statuses"][0]["recipient_id"]}]
        for contact in value.get("contacts", []):
            contact.setdefault("user_id", "US.1234567890")
    return json.dumps(data).encode()


def _once(fn, bodies: list[bytes], rounds: int) -> float:
    """Parses per second of this process's CPU time (``CLOCK_PROCESS_CPUTIME_ID``): on a shared
    two-core machine, wall time also counts the slices other processes took; CPU time does not."""
    started = time.process_time()
    for _ in range(rounds):
        for body in bodies:
            fn(body)
    return rounds * len(bodies) / (time.process_time() - started)


def _rates(cases: dict[str, tuple], rounds: int, repeats: int = 5) -> dict[str, float]:
    """Each case's best of ``repeats`` runs (the least disturbed one on a shared machine), the
    cases interleaved run by run so a burst of load elsewhere hits them alike."""
    best = dict.fromkeys(cases, 0.0)
    for _ in range(repeats):
        for name, (fn, bodies) in cases.items():
            best[name] = max(best[name], _once(fn, bodies, rounds))
    return best


def main(rounds: int = 2000) -> None:
    bodies = _bodies()
    cases = {"loads": (json.loads, bodies), "ours": (parse_webhook, bodies)}
    try:
        from pywa import WhatsApp, types
    except ImportError:
        types = None
    if types is not None:
        wa = WhatsApp(phone_id="106000000000002", token="x", server=None, verify_token=None)

        def pywa_parse(body: bytes):
            update = json.loads(body)
            value = update["entry"][0]["changes"][0]["value"]
            cls = types.MessageStatus if "statuses" in value else types.Message
            if "messages" in value and value["messages"][0]["type"] in ("interactive", "button"):
                sub = value["messages"][0].get("interactive", {}).get("type")
                cls = types.CallbackSelection if sub == "list_reply" else types.CallbackButton
            return cls.from_update(client=wa, update=update)

        pywa_bodies = [_with_user_ids(b) for b in bodies]
        cases["pywa"] = (pywa_parse, pywa_bodies)
        cases["ours_same"] = (parse_webhook, pywa_bodies)
    rate = _rates(cases, rounds)
    loads, ours = rate["loads"], rate["ours"]
    print(f"{len(bodies)} payloads x {rounds} rounds, best of 5 (interleaved), per CPU second")
    print(f"  json.loads only          {loads:10.0f} /s")
    print(f"  replyflow parse_webhook  {ours:10.0f} /s   ({ours / loads:.2f}x json.loads)")
    if types is None:
        print("  pywa: not installed (pip install pywa) — skipped")
        return
    theirs, ours_same = rate["pywa"], rate["ours_same"]
    print(f"  pywa 4.5 from_update     {theirs:10.0f} /s   (same bodies with user_id)")
    print(f"  replyflow on those       {ours_same:10.0f} /s   = {ours_same / theirs:.2f}x pywa")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
