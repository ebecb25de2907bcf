"""`replyflow report`: rich tables, --csv with the exact figures, --png a real chart."""

from __future__ import annotations

import csv
from datetime import timedelta

from click.testing import CliRunner
from rich.console import Console

from bridge.cli import main
from bridge.report_output import CSV_COLUMNS, print_report, write_csv, write_png
from tests.core.test_metrics_figures import REPORT
from tests.harness import Harness


def test_csv_has_one_exact_row_per_flow_template_and_step(tmp_path):
    path = tmp_path / "figures.csv"
    assert write_csv(REPORT, path) == 2 + 5 + 4
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert list(rows[0]) == CSV_COLUMNS
    cart = next(r for r in rows if (r["group"], r["key"]) == ("flow", "cart_recovery"))
    assert {k: cart[k] for k in ("runs", "contacted", "sent", "delivered", "read", "replied", "reply_rate",
                                 "median_reply_seconds", "handoffs", "opt_outs", "converted", "conversion_rate",
                                 "carts_recovered", "orders", "revenue")} == {
        "runs": "4", "contacted": "3", "sent": "5", "delivered": "4", "read": "2", "replied": "3", "reply_rate": "0.6",
        "median_reply_seconds": "600.0", "handoffs": "1", "opt_outs": "1", "converted": "3",
        "conversion_rate": "0.75", "carts_recovered": "2", "orders": "3", "revenue": "EUR 114.90"}
    es = next(r for r in rows if r["key"] == "cart_reminder [es]")
    assert (es["group"], es["median_reply_seconds"], es["reply_rate"]) == ("template", "", "0.0")


def test_tables_show_flows_holdout_and_variants():
    console = Console(width=240, record=True)
    print_report(REPORT, console)
    text = console.export_text()
    assert "Attribution window: 7 day(s)." in text
    for expected in ("Flows", "Templates", "Flow steps", "cart_recovery/reply_help", "114.90 EUR",
                     "Hold-out: conversion", "+25.0 pts", "A/B variants", "appointment_short"):
        assert expected in text, expected
    assert "75.0% [30.1%–95.4%] n=4" in text  # 3 of 4 with its Wilson interval
    # cells are text, not rich markup: each template keeps its language
    for key in ("cart_reminder [en_US]", "cart_reminder [es]", "cart_reminder_2 [en_US]"):
        assert f"│ {key} " in text, key


def test_png_is_a_png(tmp_path):
    path = tmp_path / "chart.png"
    write_png(REPORT, path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_the_command_reports_from_the_bridges_records(tmp_path):
    h = Harness(tmp_path)
    try:
        h.shopify("checkouts_create")
        h.at(h.clock.now() + timedelta(hours=2))  # the abandonment wait is over: the reminder goes
        h.sandbox.deliver_statuses("read")
        h.settle()
        result = CliRunner().invoke(main, ["report", "--window", "3d", "--csv", str(tmp_path / "r.csv"),
                                           "--png", str(tmp_path / "r.png")])
    finally:
        h.close()
    assert result.exit_code == 0, result.output
    assert "Attribution window: 3 day(s)." in result.output and "cart_recovery" in result.output
    rows = list(csv.DictReader((tmp_path / "r.csv").open(encoding="utf-8")))
    flow = next(r for r in rows if r["group"] == "flow")
    assert (flow["key"], flow["runs"], flow["sent"], flow["delivered"], flow["read"]) == ("cart_recovery", "1", "1", "1", "1")
    step = next(r for r in rows if r["group"] == "step")
    assert step["key"] == "cart_recovery/remind"
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    assert "wrote 3 row(s)" in result.output
