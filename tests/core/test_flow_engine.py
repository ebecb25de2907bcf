"""The pure flow engine: (flow, state, event, context, now, check) → new state + commands."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from core.commands import HandOff, SendTemplate, SendText
from core.flows.definition import load_flow, shipped_flows
from core.flows.engine import (
    DEFAULT_REASK,
    MAX_STEPS_PER_ADVANCE,
    Cancel,
    Reply,
    RunState,
    Start,
    TransitionNotAllowed,
    Wake,
    advance,
    start,
)
from core.gate import Decision, Verdict

NOW = datetime(2024, 5, 1, 9, 0, 0, tzinfo=timezone.utc)
LATER = NOW + timedelta(hours=2)
H = timedelta(hours=1)

FLOW = shipped_flows()["cart_recovery"]
URL = "https://shop.example/cart/recover/abc"
CTX = {
    "settings": {"cart_abandon_delay": "30m"},
    "contact": {"first_name": "Ana"},
    "cart": {"total_display": "€42.00", "recovery_url": URL},
}
CTX_NO_SETTING = {**CTX, "settings": {}}


class FakeCheck:
    """A stand-in for the policy gate: records what it was shown, answers from a script."""

    def __init__(self, *decisions: Decision) -> None:
        self.decisions = list(decisions)
        self.seen: list[object] = []

    def __call__(self, command):
        self.seen.append(command)
        if self.decisions:
            return self.decisions.pop(0) if len(self.decisions) > 1 else self.decisions[0]
        return Decision(verdict=Verdict.ALLOWED)


def allow():
    return FakeCheck(Decision(verdict=Verdict.ALLOWED))


def must_not_check(command):  # for transitions that should not send
    raise AssertionError(f"check called with {command!r}")


WAIT_STATE = RunState(step="wait_for_abandonment", status="waiting", waiting_for="timer", wake_at=NOW + 30 * timedelta(minutes=1))
REPLY_STATE = RunState(step="await_reply", status="waiting", waiting_for="reply", wake_at=NOW + 24 * H)
HANDED_OFF = RunState(step="hand_off", status="handed_off", outcome="handed off")


# --------------------------------------------------------------------------- happy path


@pytest.mark.parametrize(
    "ctx, delay",
    [
        pytest.param(CTX, timedelta(minutes=30), id="delay-from-settings"),
        pytest.param(CTX_NO_SETTING, timedelta(hours=1), id="fallback-1h"),
        pytest.param({**CTX, "settings": {"cart_abandon_delay": ""}}, timedelta(hours=1), id="empty-setting-fallback"),
        pytest.param({**CTX, "settings": {"cart_abandon_delay": "2h15m"}}, timedelta(hours=2, minutes=15),
                     id="compound-setting"),
    ],
)
def test_start_waits_for_abandonment(ctx, delay):
    adv = start(FLOW, ctx, NOW, must_not_check)
    assert adv.state == RunState(step="wait_for_abandonment", status="waiting", waiting_for="timer", wake_at=NOW + delay)
    assert adv.commands == ()
    assert adv.notes[0] == "started cart_recovery v2"


def test_wake_at_wait_sends_template_then_waits_for_reply():
    check = allow()
    adv = advance(FLOW, WAIT_STATE, Wake("wait_for_abandonment"), CTX, LATER, check)
    expected = SendTemplate(template="cart_reminder",
                            params={"first_name": "Ana", "cart_total": "€42.00", "recovery_link": URL})
    assert adv.commands == (expected,)
    assert check.seen == [expected]
    assert adv.state == RunState(step="await_reply", status="waiting", waiting_for="reply", wake_at=LATER + 24 * H)


def test_template_param_fallback_when_first_name_missing():
    ctx = {**CTX, "contact": {"first_name": None}}
    adv = advance(FLOW, WAIT_STATE, Wake("wait_for_abandonment"), ctx, LATER, allow())
    assert adv.commands[0].params["first_name"] == "there"


def test_reply_complete_sends_recovery_link_and_completes():
    check = allow()
    adv = advance(FLOW, REPLY_STATE, Reply(reply_id="cart_complete", text="Complete my order"), CTX, LATER, check)
    assert adv.commands == (SendText(text=f"Here is your cart, just as you left it: {URL}"),)
    assert adv.state.status == "completed"
    assert adv.state.ended
    assert adv.state.step is None
    assert adv.state.outcome == "completed"
    assert adv.state.wake_at is None


def test_reply_help_button_hands_off():
    adv = advance(FLOW, REPLY_STATE, Reply(reply_id="cart_help", text="I need help"), CTX, LATER, must_not_check)
    assert adv.commands == (HandOff(reason="Customer asked for help with their cart"),)
    assert adv.state == RunState(step="hand_off", status="handed_off", outcome="handed off")
    assert not adv.state.ended


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("Ayuda!", id="spanish-punctuated"),
        pytest.param(" HELP ", id="upper-padded"),
        pytest.param("help", id="plain"),
        pytest.param("Hilfe.", id="german"),
        pytest.param("¿ayuda?", id="inverted-question"),
    ],
)
def test_keyword_reply_hands_off(text):
    adv = advance(FLOW, REPLY_STATE, Reply(text=text), CTX, LATER, must_not_check)
    assert adv.state.status == "handed_off"
    assert adv.state.step == "hand_off"
    assert adv.commands == (HandOff(reason="Customer asked for help with their cart"),)
    assert any("keyword" in n for n in adv.notes)


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(Reply(text="what is this?"), id="free-text"),
        pytest.param(Reply(text="help me please"), id="keyword-not-whole-message"),
        pytest.param(Reply(reply_id="unknown_button"), id="unknown-button"),
        pytest.param(Reply(), id="empty-reply"),
    ],
)
def test_unrecognised_reply_is_reasked_once_then_goes_otherwise_to_hand_off(reply):
    first = advance(FLOW, REPLY_STATE, reply, CTX, LATER, allow())
    assert first.commands == (SendText(text=DEFAULT_REASK),)
    assert (first.state.step, first.state.status, first.state.waiting_for) == ("await_reply", "waiting", "reply")
    assert first.state.wake_at == REPLY_STATE.wake_at  # re-asking does not stretch the timeout
    second = advance(FLOW, first.state, reply, CTX, LATER, must_not_check)
    assert second.state.status == "handed_off"
    assert second.state.step == "hand_off"
    assert any("unrecognised reply" in n for n in second.notes)


def test_unrecognised_reply_without_otherwise_hands_off_with_bot_reason():
    flow = load_flow("""
name: t
version: 1
trigger: {event: e}
steps:
  - id: ask
    wait_for_reply:
      timeout: 1h
      replies:
        - {button: yes_btn, goto: end}
""")
    state = RunState(step="ask", status="waiting", waiting_for="reply", wake_at=NOW + H,
                     vars={"_reasks:ask": 1})  # already re-asked once
    adv = advance(flow, state, Reply(text="hmm"), {}, LATER, must_not_check)
    assert adv.commands == (HandOff(reason="the bot did not understand the reply"),)
    assert adv.state == RunState(step="ask", status="handed_off", outcome="handed off", vars={"_reasks:ask": 1})


def test_reply_timeout_sends_the_second_reminder_then_completes():
    adv = advance(FLOW, REPLY_STATE, Wake("await_reply"), CTX, LATER + 24 * H, allow())
    assert [c.template for c in adv.commands] == ["cart_reminder_2"]
    assert (adv.state.step, adv.state.waiting_for) == ("await_second_reply", "reply")
    assert any("no reply in time" in n for n in adv.notes)
    last = advance(FLOW, adv.state, Wake("await_second_reply"), CTX, LATER + 48 * H, must_not_check)
    assert last.commands == () and last.state.status == "completed"


# --------------------------------------------------------------------------- refused transitions


@pytest.mark.parametrize(
    "state, event, match",
    [
        pytest.param(WAIT_STATE, Wake("remind"), "stale", id="stale-wake-on-timer"),
        pytest.param(REPLY_STATE, Wake("wait_for_abandonment"), "stale", id="stale-wake-on-reply"),
        pytest.param(WAIT_STATE, Reply(reply_id="cart_complete"), "not waiting for a reply", id="reply-on-timer"),
        pytest.param(REPLY_STATE, Start(), "past its first wait", id="start-after-first-wait"),
        pytest.param(HANDED_OFF, Reply(text="hello?"), "agent", id="reply-after-handoff"),
        pytest.param(HANDED_OFF, Wake("hand_off"), "agent", id="wake-after-handoff"),
        pytest.param(WAIT_STATE, "not an event", "unknown event", id="unknown-event"),
    ],
)
def test_transition_not_allowed(state, event, match):
    with pytest.raises(TransitionNotAllowed, match=match):
        advance(FLOW, state, event, CTX, LATER, must_not_check)


ENDED = [
    pytest.param(RunState(step=None, status="completed", outcome="completed"), id="completed"),
    pytest.param(RunState(step="remind", status="cancelled", outcome="order_created"), id="cancelled"),
    pytest.param(RunState(step="remind", status="failed", outcome="boom"), id="failed"),
]


@pytest.mark.parametrize("state", ENDED)
@pytest.mark.parametrize(
    "event",
    [
        pytest.param(Start(), id="start"),
        pytest.param(Wake("remind"), id="wake"),
        pytest.param(Reply(text="help"), id="reply"),
        pytest.param(Cancel("again"), id="cancel"),
    ],
)
def test_advancing_an_ended_run_is_refused(state, event):
    with pytest.raises(TransitionNotAllowed, match=f"already {state.status}"):
        advance(FLOW, state, event, CTX, LATER, must_not_check)


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(WAIT_STATE, id="waiting-timer"),
        pytest.param(REPLY_STATE, id="waiting-reply"),
        pytest.param(HANDED_OFF, id="handed-off"),
        pytest.param(RunState(step="remind", status="waiting", waiting_for="timer", wake_at=NOW), id="deferred-send"),
    ],
)
def test_cancel_at_any_point(state):
    adv = advance(FLOW, state, Cancel("order_created"), CTX, LATER, must_not_check)
    assert adv.state.status == "cancelled"
    assert adv.state.outcome == "order_created"
    assert adv.state.step == state.step
    assert adv.state.waiting_for is None and adv.state.wake_at is None
    assert adv.state.ended
    assert adv.commands == ()
    assert adv.notes == ("cancelled: order_created",)


# --------------------------------------------------------------------------- re-entry


def test_start_during_first_wait_restarts_it_from_new_now():
    adv = advance(FLOW, WAIT_STATE, Start(), CTX, LATER, must_not_check)
    assert adv.state == RunState(step="wait_for_abandonment", status="waiting", waiting_for="timer",
                                 wake_at=LATER + timedelta(minutes=30))
    assert adv.commands == ()
    assert any("restarted" in n for n in adv.notes)


def test_start_with_reentry_ignore_is_refused():
    flow = load_flow("""
name: t
version: 1
trigger: {event: e, reentry: ignore}
steps:
  - {id: pause, wait: 1h}
  - {id: say, send_text: hi}
""")
    state = RunState(step="pause", status="waiting", waiting_for="timer", wake_at=NOW + H)
    with pytest.raises(TransitionNotAllowed):
        advance(flow, state, Start(), {}, LATER, must_not_check)


def test_start_while_deferred_on_a_later_step_is_refused():
    state = RunState(step="remind", status="waiting", waiting_for="timer", wake_at=LATER)
    with pytest.raises(TransitionNotAllowed):
        advance(FLOW, state, Start(), CTX, NOW, must_not_check)


# --------------------------------------------------------------------------- the gate


@pytest.mark.parametrize(
    "verdict",
    [pytest.param(Verdict.BLOCKED, id="blocked"), pytest.param(Verdict.NEEDS_TEMPLATE, id="needs-template"),
     pytest.param(Verdict.DEFERRED, id="deferred-without-until")],
)
def test_refused_template_completes_without_command(verdict):
    check = FakeCheck(Decision(verdict=verdict, reason="no marketing opt-in on record"))
    adv = advance(FLOW, WAIT_STATE, Wake("wait_for_abandonment"), CTX, LATER, check)
    assert adv.commands == ()
    assert len(check.seen) == 1 and isinstance(check.seen[0], SendTemplate)
    assert adv.state == RunState(step="remind", status="completed", outcome="not sent: no marketing opt-in on record")


def test_refused_send_follows_on_blocked():
    flow = load_flow("""
name: t
version: 1
trigger: {event: e}
steps:
  - id: promo
    send_template: {name: promo}
    on_blocked: fallback
  - {id: unreachable, send_text: nope}
  - {id: fallback, handoff: "could not send"}
""")
    check = FakeCheck(Decision(verdict=Verdict.BLOCKED, reason="opted out"))
    adv = start(flow, {}, NOW, check)
    assert adv.commands == (HandOff(reason="could not send"),)
    assert adv.state.status == "handed_off" and adv.state.step == "fallback"


def test_deferred_send_waits_on_same_step_then_retries_on_wake():
    until = LATER + 8 * H
    check = FakeCheck(Decision(verdict=Verdict.DEFERRED, reason="quiet hours", until=until))
    adv = advance(FLOW, WAIT_STATE, Wake("wait_for_abandonment"), CTX, LATER, check)
    assert adv.commands == ()
    assert adv.state == RunState(step="remind", status="waiting", waiting_for="timer", wake_at=until)

    retry = allow()
    adv2 = advance(FLOW, adv.state, Wake("remind"), CTX, until, retry)
    assert [type(c) for c in adv2.commands] == [SendTemplate]
    assert len(retry.seen) == 1
    assert adv2.state == RunState(step="await_reply", status="waiting", waiting_for="reply", wake_at=until + 24 * H)


def test_deferred_send_refuses_a_reply_and_a_stale_wake():
    state = RunState(step="remind", status="waiting", waiting_for="timer", wake_at=LATER)
    with pytest.raises(TransitionNotAllowed):
        advance(FLOW, state, Reply(text="help"), CTX, NOW, must_not_check)
    with pytest.raises(TransitionNotAllowed):
        advance(FLOW, state, Wake("wait_for_abandonment"), CTX, NOW, must_not_check)


# --------------------------------------------------------------------------- failures

LOOP = """
name: loop
version: 1
trigger: {event: e}
steps:
  - {id: ping, send_text: ping, goto: pong}
  - {id: pong, send_text: pong, goto: ping}
"""


def test_loop_without_wait_fails_after_max_steps():
    check = allow()
    adv = start(load_flow(LOOP), {}, NOW, check)
    assert adv.state.status == "failed"
    assert adv.state.ended
    assert adv.state.outcome == "loop without a wait"
    assert len(check.seen) == MAX_STEPS_PER_ADVANCE
    assert any(str(MAX_STEPS_PER_ADVANCE) in n for n in adv.notes)


def test_loop_without_wait_emits_no_sends():
    adv = start(load_flow(LOOP), {}, NOW, allow())
    assert not any(isinstance(c, (SendText, SendTemplate)) for c in adv.commands)


@pytest.mark.parametrize(
    "ctx, step, missing",
    [
        pytest.param({**CTX, "cart": {"recovery_url": URL}}, "remind", "cart.total_display", id="template-param"),
        pytest.param({**CTX, "cart": {"total_display": "€1"}}, "remind", "cart.recovery_url", id="recovery-link"),
    ],
)
def test_missing_value_without_fallback_fails_naming_the_step(ctx, step, missing):
    adv = advance(FLOW, WAIT_STATE, Wake("wait_for_abandonment"), ctx, LATER, must_not_check)
    assert adv.state.status == "failed"
    assert adv.state.step == step
    assert adv.state.outcome.startswith(f"step '{step}': ")
    assert missing in adv.state.outcome
    assert adv.commands == ()


def test_missing_value_in_send_text_fails_after_reply():
    ctx = {**CTX, "cart": {}}
    adv = advance(FLOW, REPLY_STATE, Reply(reply_id="cart_complete"), ctx, LATER, must_not_check)
    assert adv.state.status == "failed"
    assert "step 'send_link'" in adv.state.outcome


def test_bad_duration_value_from_context_fails_the_wait_step():
    ctx = {**CTX, "settings": {"cart_abandon_delay": "soon"}}
    adv = start(FLOW, ctx, NOW, must_not_check)
    assert adv.state.status == "failed"
    assert adv.state.step == "wait_for_abandonment"
    assert "not a duration" in adv.state.outcome


def test_commands_before_a_failure_are_kept():
    flow = load_flow("""
name: t
version: 1
trigger: {event: e}
steps:
  - {id: hello, send_text: hi}
  - {id: greet, send_text: "hi {{ contact.first_name }}"}
""")
    adv = start(flow, {}, NOW, allow())
    assert adv.commands == (SendText(text="hi"),)
    assert adv.state.status == "failed" and adv.state.step == "greet"


def test_send_text_buttons_are_carried():
    flow = load_flow("""
name: t
version: 1
trigger: {event: e}
steps:
  - id: ask
    send_text:
      text: "Hi {{ contact.first_name }}"
      buttons: [{id: yes_btn, title: "Yes"}, {id: no_btn, title: "No"}]
  - id: listen
    wait_for_reply:
      timeout: 2h
      replies:
        - {button: yes_btn, goto: end}
        - {any_text: true, goto: ask}
""")
    adv = start(flow, {"contact": {"first_name": "Ana"}}, NOW, allow())
    assert adv.commands == (SendText(text="Hi Ana", buttons=(("yes_btn", "Yes"), ("no_btn", "No"))),)
    assert adv.state == RunState(step="listen", status="waiting", waiting_for="reply", wake_at=NOW + 2 * H)
    again = advance(flow, adv.state, Reply(text="maybe"), {"contact": {"first_name": "Ana"}}, LATER, allow())
    assert again.state.wake_at == LATER + 2 * H and len(again.commands) == 1


def test_accented_keyword_matches_the_same_word():
    flow = load_flow("""
name: t
version: 1
trigger: {event: e}
steps:
  - id: ask
    wait_for_reply:
      timeout: 1h
      replies:
        - {keywords: ["ajúda"], goto: helped}
      otherwise: end
  - {id: helped, handoff: "asked for help"}
""")
    state = RunState(step="ask", status="waiting", waiting_for="reply", wake_at=NOW + H)
    adv = advance(flow, state, Reply(text="ajúda"), {}, LATER, must_not_check)
    assert adv.state.status == "handed_off"
