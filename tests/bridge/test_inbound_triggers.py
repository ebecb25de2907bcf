"""Flows started by what a customer writes: the first message ever, or a keyword later."""

from __future__ import annotations

from sqlalchemy import select

from core.store.models import FlowRun
from tests.harness import Harness

GREET = """
name: greet
version: 1
trigger: {event: first_inbound_message}
steps:
  - id: hello
    send_text:
      text: "Hi {{ contact.first_name or \\"there\\" }}! Ask me anything, or type MENU."
      buttons: [{id: show_menu, title: Menu}]
"""
MENU = """
name: menu
version: 1
trigger:
  event: inbound_keyword
  filters: [{field: event.keyword, one_of: [menu, carta, cardapio]}]
steps:
  - id: menu
    send_text: "Today: sencha, genmaicha and a kyusu teapot."
"""


def _harness(tmp_path) -> Harness:
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "greet.yaml").write_text(GREET)
    (folder / "menu.yaml").write_text(MENU)
    return Harness(tmp_path, flows_dir=str(folder))


def test_first_message_then_keyword(tmp_path):
    h = _harness(tmp_path)
    try:
        h.sandbox.customer_sends("15550006666", "Lena", text="hello?")
        h.settle()
        assert h.sandbox.sent[-1].body["interactive"]["body"]["text"] == "Hi Lena! Ask me anything, or type MENU."
        h.sandbox.customer_sends("15550006666", "Lena", text="thanks")  # not a keyword: nothing starts
        h.settle()
        assert len(h.sandbox.sent) == 1
        h.sandbox.customer_sends("15550006666", "Lena", text="Menú!")  # folded to "menu"
        h.settle()
        assert h.sandbox.sent[-1].body["text"]["body"].startswith("Today:")
        with h.session() as s:
            assert sorted(s.scalars(select(FlowRun.flow_name))) == ["greet", "menu"]
    finally:
        h.close()
