"""Submit and sync: the real CloudApiClient against the sandbox's template endpoints; the status
webhooks keep the template table up to date; sends follow the stored status."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from bridge.cli import main
from bridge.template_sync import submit_templates, sync_templates
from core.store.models import TemplateRecord
from core.template_files import load_folder
from tests.conftest import fixture_bytes
from tests.harness import Harness

GOOD = Path(__file__).resolve().parent.parent / "fixtures" / "templates" / "good"


@pytest.fixture(params=["sqlite", "postgres"])
def h(request, tmp_path):
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    harness = Harness(tmp_path, templates_dir=str(GOOD), database_url=url)
    yield harness
    harness.close()


def _rows(h: Harness) -> dict[tuple[str, str], tuple]:
    with h.session() as s:
        return {(r.name, r.language): (r.status, r.quality, r.rejected_reason)
                for r in s.scalars(select(TemplateRecord))}


def test_submit_creates_each_language_pending_and_a_second_submit_changes_nothing(h):
    outcomes = submit_templates(h.rt, list(load_folder(GOOD)))
    assert [(o.name, o.language, o.outcome) for o in outcomes] == [
        ("winter_sale", "en_US", "submitted (PENDING)"), ("winter_sale", "es", "submitted (PENDING)")]
    created = h.sandbox.templates.get("winter_sale", "en_US")
    assert [c["type"] for c in created.components] == ["HEADER", "BODY", "FOOTER", "BUTTONS"]
    body = created.components[1]
    assert body["example"] == {"body_text_named_params": [{"param_name": "first_name", "example": "Maria"},
                                                          {"param_name": "discount", "example": "20%"}]}
    assert _rows(h) == {("winter_sale", "en_US"): ("PENDING", None, None), ("winter_sale", "es"): ("PENDING", None, None)}
    again = submit_templates(h.rt, list(load_folder(GOOD)))
    assert [o.outcome for o in again] == ["already submitted (PENDING)"] * 2
    assert h.sandbox.templates.calls.count(("POST", "109876543210001/message_templates")) == 2


def test_review_webhooks_update_status_quality_and_reason_live(h):
    submit_templates(h.rt, list(load_folder(GOOD)))
    assert h.sandbox.templates.review("winter_sale", "en_US", "APPROVED").status_code == 200
    h.sandbox.templates.review("winter_sale", "es", "REJECTED", reason="INVALID_FORMAT",
                               info="Parameters placed next to each other.")
    h.settle()
    assert _rows(h) == {("winter_sale", "en_US"): ("APPROVED", None, None),
                        ("winter_sale", "es"): ("REJECTED", None, "INVALID_FORMAT: Parameters placed next to each other.")}
    h.sandbox.templates.quality("winter_sale", "en_US", "YELLOW")
    h.sandbox.templates.review("winter_sale", "en_US", "PAUSED", info="Paused for 3 hours.")
    h.settle()
    assert _rows(h)[("winter_sale", "en_US")] == ("PAUSED", "YELLOW", "FIRST_PAUSE: Paused for 3 hours.")
    h.sandbox.templates.review("winter_sale", "en_US", "REINSTATED")
    h.settle()
    assert _rows(h)[("winter_sale", "en_US")] == ("APPROVED", "YELLOW", None)


def test_a_rejected_template_is_edited_and_reviewed_again(h):
    submit_templates(h.rt, list(load_folder(GOOD)))
    h.sandbox.templates.review("winter_sale", "es", "REJECTED", reason="PROMOTIONAL")
    h.settle()
    again = submit_templates(h.rt, list(load_folder(GOOD)))
    assert [o.outcome for o in again] == ["already submitted (PENDING)", "resubmitted (PENDING)"]
    es = h.sandbox.templates.get("winter_sale", "es")
    assert es.status == "PENDING" and ("POST", es.id) in h.sandbox.templates.calls
    assert _rows(h)[("winter_sale", "es")] == ("PENDING", None, None)


def test_sync_pulls_statuses_page_by_page_and_reports_changes(h):
    submit_templates(h.rt, list(load_folder(GOOD)))
    desk = h.sandbox.templates
    desk.templates[("winter_sale", "en_US")].status = "APPROVED"  # reviewed, but the webhook got lost
    desk.templates[("winter_sale", "es")].status = "REJECTED"
    desk.templates[("winter_sale", "es")].rejected_reason = "PROMOTIONAL"
    changes = sync_templates(h.rt)
    assert changes == ["winter_sale [en_US]: PENDING -> APPROVED",
                       "winter_sale [es]: PENDING -> REJECTED (PROMOTIONAL)"]
    assert sync_templates(h.rt) == []  # nothing new
    assert len(h.rt.whatsapp.list_templates("109876543210001", page_size=1)) == 2  # cursor paging
    assert desk.calls.count(("GET", "109876543210001/message_templates")) == 4


def test_template_webhook_fixtures_update_the_table(h):
    """Meta's own shapes (tests/fixtures/whatsapp/template_*.json) are stored as they say."""
    for name in ("template_status_update_paused.json", "template_quality_update.json",
                 "template_status_update_rejected.json", "template_category_update.json"):
        assert h.whatsapp(fixture_bytes("whatsapp", name)).status_code == 200
    rows = _rows(h)
    assert rows[("abandoned_cart_reminder", "en_US")] == (
        "PAUSED", "YELLOW", "FIRST_PAUSE: Your WhatsApp message template has been paused for 3 hours until "
                            "11:00 AM UTC because it had issues.")
    assert rows[("winter_sale_promo", "es")][0] == "REJECTED"
    assert rows[("winter_sale_promo", "es")][2].startswith("INVALID_FORMAT: Your template has parameters")
    with h.session() as s:
        recategorised = s.scalar(select(TemplateRecord).where(TemplateRecord.name == "order_followup_offer"))
        assert (recategorised.language, recategorised.category, recategorised.status) == ("en_US", "MARKETING", "UNKNOWN")


def test_a_quality_webhook_alone_does_not_stop_an_approved_catalogue_template(h):
    body = fixture_bytes("whatsapp", "template_quality_update.json").replace(b"abandoned_cart_reminder", b"cart_reminder")
    assert h.whatsapp(body).status_code == 200
    assert _rows(h)[("cart_reminder", "en_US")] == ("UNKNOWN", "YELLOW", None)
    h.shopify("checkouts_create")
    with h.session() as s:
        from core.store.models import FlowRun

        wake_at = s.scalars(select(FlowRun)).one().wake_at
    h.at(wake_at)
    assert [m.body["template"]["name"] for m in h.sandbox.sent] == ["cart_reminder"]


def test_cli_submit_sync_list(h):
    runner = CliRunner()
    submitted = runner.invoke(main, ["templates", "submit"])
    assert submitted.exit_code == 0, submitted.output
    assert "winter_sale [es]: submitted (PENDING)" in submitted.output
    h.sandbox.templates.templates[("winter_sale", "es")].status = "APPROVED"
    synced = runner.invoke(main, ["templates", "sync"])
    assert "winter_sale [es]: PENDING -> APPROVED" in synced.output and "1 change(s)" in synced.output
    listed = runner.invoke(main, ["templates", "list"])
    assert "winter_sale" in listed.output and "APPROVED" in listed.output
    assert "cart_reminder" in listed.output and "APPROVED (sandbox)" in listed.output


def test_cli_list_with_a_real_number_does_not_call_a_file_s_template_approved(h):
    from dataclasses import replace

    h.rt.settings = replace(h.rt.settings, sandbox=False)  # as with WHATSAPP_ACCESS_TOKEN set
    listed = CliRunner().invoke(main, ["templates", "list"])
    assert listed.exit_code == 0, listed.output
    assert "not synced (file: APPROVED)" in listed.output and "APPROVED (sandbox)" not in listed.output
    assert "replyflow templates sync" in listed.output


def test_an_admin_approves_a_submitted_template_on_the_sandbox_as_meta_would(h):
    import httpx

    assert CliRunner().invoke(main, ["templates", "submit"]).exit_code == 0
    review = f"{h.sandbox_server.url}/_sandbox/templates/winter_sale/es/review"
    assert httpx.post(review, json={"status": "maybe"}).status_code == 400
    assert httpx.post(f"{h.sandbox_server.url}/_sandbox/templates/nope/es/review",
                      json={"status": "APPROVED"}).status_code == 404
    answer = httpx.post(review, json={"status": "approved"})
    assert answer.status_code == 200 and answer.json() == {"status": "APPROVED", "bridge_status": 200}
    h.settle()
    assert _rows(h)[("winter_sale", "es")][0] == "APPROVED"  # through the status webhook
