"""The inbox in a real browser: Playwright driving Debian's Chromium (headless) against the bridge
served on loopback, with the WhatsApp sandbox and a manual clock. Screenshots of each page go to
artifacts/screenshots/; with REPLYFLOW_UPDATE_DOCS=1 the thread view is also copied to
docs/inbox-thread.png for the README (a plain test run leaves the checkout as it was).

Under CI=true a missing Playwright or Chromium is a failure, not a skip."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from core.store.models import FlowRun
from tests.harness import Harness
from tests.inbox_support import ADMIN, NAME, WA_ID, add_agents, past_window

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
WAIT = 15_000  # ms: the longest a live update may take to show (the page asks every 2 s)


def _missing(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is missing (CI=true: the browser tests are required)")
    pytest.skip(f"{what} is missing")


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python (pip install playwright)")
    if not Path(CHROMIUM).exists():
        _missing(f"Chromium at {CHROMIUM} (apt-get install -y chromium)")
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield browser
        browser.close()


@pytest.fixture
def h(tmp_path):
    harness = Harness(tmp_path)
    harness.server._server.app.config.update(INBOX_SSE_POLL=0.2)  # streams: the default, one look each
    add_agents(harness)
    yield harness
    harness.close()


@pytest.fixture
def page(browser, h):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(WAIT)
    yield page
    context.close()


def _shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _sign_in(page, h: Harness, target: str = "/inbox/") -> None:
    page.goto(h.server.url + target)
    assert "/inbox/login" in page.url
    page.fill("input[name=email]", ADMIN[0])
    page.fill("input[name=password]", ADMIN[1])
    _shot(page, "01-login")
    page.click("button[type=submit]")
    page.wait_for_url(f"**{target}")


def _abandoned_cart_reminded(h: Harness) -> None:
    assert h.shopify("checkouts_create").status_code == 200
    with h.session() as s:
        wake = s.scalars(select(FlowRun)).one().wake_at
    h.at(wake)


def test_agent_takes_a_live_handoff_replies_sends_a_template_and_releases(page, h: Harness):
    from playwright.sync_api import expect

    _sign_in(page, h)
    expect(page.locator("#live.on")).to_be_visible()  # the event stream is connected
    _abandoned_cart_reminded(h)
    h.sandbox.customer_sends(WA_ID, NAME, button=("cart_help", "I need help"))
    h.settle()
    waiting = page.locator("tr.conv.waiting")
    expect(waiting).to_contain_text("Maya")  # arrived live: no reload
    expect(waiting).to_contain_text("Customer asked for help with their cart")
    expect(waiting.locator(".unread")).to_have_text("1")
    _shot(page, "02-list-handoff-waiting")

    waiting.locator("a").click()
    expect(page.locator(".head h1")).to_contain_text("Maya")
    page.click("button[name=take]")
    expect(page.locator(".state")).to_contain_text(f"with {ADMIN[0]}")
    page.fill("textarea[name=text]", "Hi Maya, this is Ada. What can I help with?")
    page.click("form.reply button[type=submit]")
    agent_msg = page.locator("li.msg.agent").last
    expect(agent_msg).to_contain_text("this is Ada")
    h.settle()
    h.sandbox.deliver_statuses("read")
    h.settle()
    expect(agent_msg.locator(".tick")).to_contain_text("read")  # the ticks moved live
    thread = _shot(page, "03-thread-reply-read")
    if os.environ.get("REPLYFLOW_UPDATE_DOCS") == "1":
        shutil.copyfile(thread, ROOT / "docs" / "inbox-thread.png")

    past_window(h)  # the page is still open with a text box: the gate must say no
    page.fill("textarea[name=text]", "Are you still there?")
    page.click("form.reply button[type=submit]")
    expect(page.locator(".flash.error")).to_contain_text("the customer-service window is closed")
    expect(page.locator("#window")).to_contain_text("24-hour window closed")
    expect(page.locator("textarea[name=text]")).to_have_count(0)
    reopen = page.locator("form.template[data-template=conversation_reopen]")
    expect(reopen.locator(".preview")).to_contain_text("Hi Maya, we have an answer to your question")
    _shot(page, "04-thread-window-closed-template")
    reopen.locator("button[type=submit]").click()
    h.settle()
    expect(page.locator("li.msg.agent").last).to_contain_text("we have an answer")

    page.click("button[name=release]")
    h.settle()
    expect(page.locator(".flash.ok")).to_contain_text("Released to the bot")
    expect(page.locator(".state")).to_contain_text("with the bot")
    expect(page.locator("li.sys").last).to_contain_text("Context for the bot")
    _shot(page, "05-thread-released")

    page.goto(h.server.url + "/inbox/admin/metrics")
    expect(page.locator("#flow-figures")).to_contain_text("cart_recovery")
    expect(page.locator("svg.chart")).to_be_visible()
    _shot(page, "06-metrics")
    page.goto(h.server.url + "/inbox/admin/agents")
    _shot(page, "07-agents")


def test_playing_the_customer_on_the_sandbox_phone(page, h: Harness):
    from playwright.sync_api import expect

    _abandoned_cart_reminded(h)  # the bot sent Maya the cart reminder with its two buttons
    _sign_in(page, h, "/inbox/sandbox/phone")
    page.click(f"text={NAME.split()[0]}")
    phone = page.locator("#phone")
    expect(phone).to_contain_text("82.00 USD")
    _shot(page, "08-phone-reminder")
    phone.locator("button.tap", has_text="Complete my order").click()  # a signed webhook, through the sandbox
    expect(phone).to_contain_text("Here is your cart, just as you left it")  # the flow answered, live
    page.fill("#phone-compose textarea", "Thanks, ordering now!")
    page.click("#phone-compose button[type=submit]")
    expect(phone).to_contain_text("Thanks, ordering now!")
    _shot(page, "09-phone-cart-answer")


def test_text_typed_while_a_live_update_is_on_its_way_is_kept(page, h: Harness):
    """A live update asked for before the agent started typing must not land over their text: the
    composer's refresh is held in flight, the agent types, the window closes (the new composer has no
    text box), then the refresh is let through. The draft stays and sending it meets the gate."""
    from playwright.sync_api import expect

    _sign_in(page, h)
    expect(page.locator("#live.on")).to_be_visible()
    _abandoned_cart_reminded(h)
    h.sandbox.customer_sends(WA_ID, NAME, button=("cart_help", "I need help"))
    h.settle()
    page.locator("tr.conv.waiting a").click()
    page.click("button[name=take]")
    expect(page.locator(".state")).to_contain_text(f"with {ADMIN[0]}")
    expect(page.locator("#live.on")).to_be_visible()

    held = []
    composer = lambda url: "partial=composer" in url  # noqa: E731
    page.route(composer, lambda route: held.append(route))
    h.sandbox.customer_sends(WA_ID, NAME, text="Are you there?")  # a change: the page refreshes its parts
    h.settle()
    for _ in range(WAIT // 50):
        if held:
            break
        page.wait_for_timeout(50)  # lets Playwright deliver the held request to the route handler
    assert held, "the composer was not refreshed after the customer's message"
    past_window(h)
    page.fill("textarea[name=text]", "Still here: one moment please")
    with page.expect_response(lambda r: "partial=composer" in r.url) as answered:
        held[0].continue_()
    page.unroute(composer)
    answered.value.finished()
    update = answered.value.body()  # it would take the text box away
    assert b"The 24-hour window is closed" in update and b"<textarea" not in update
    page.evaluate("() => new Promise(done => setTimeout(done, 300))")  # the page's own handler has run by now
    expect(page.locator("textarea[name=text]")).to_have_value("Still here: one moment please")
    page.click("form.reply button[type=submit]")
    expect(page.locator(".flash.error")).to_contain_text("the customer-service window is closed")


@pytest.mark.parametrize("stream_seconds", [0, 60], ids=["short-streams", "long-streams"])
def test_signing_out_in_another_tab_takes_an_open_page_to_the_sign_in_page(browser, h: Harness, stream_seconds):
    """The stream tells an open page its session is over, whether it learns that when it asks again
    (short streams) or while its stream is open (long ones), and the page goes to sign in, to come
    back to where it was."""
    from playwright.sync_api import expect

    h.server._server.app.config.update(INBOX_SSE_MAX=stream_seconds)
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    try:
        page = context.new_page()
        page.set_default_timeout(WAIT)
        _sign_in(page, h)
        expect(page.locator("#live.on")).to_be_visible()
        other = context.new_page()  # another tab of the same browser: the same session
        other.goto(h.server.url + "/inbox/account/sessions")
        other.click("header form.who button[type=submit]")
        other.wait_for_url("**/inbox/login")
        page.wait_for_url("**/inbox/login?next=%2Finbox%2F")
        expect(page.locator("input[name=email]")).to_be_visible()
    finally:
        context.close()
