"""Figures computed from the records (messages, runs, carts, consent), never from counters that drift.

``report(session, workspace_id, since=, until=, window=)`` (core/metrics/report.py) gives every
figure per flow, template and step, the hold-out comparisons, the A/B variants and a daily series;
``build_report(history)`` is the same from a ``History`` built by hand. It is the one source of the
numbers: ``replyflow report``, the inbox's metrics page and the demo all show this value.
"""

from __future__ import annotations

from core.metrics.report import Report, build_report, report

__all__ = ["Report", "build_report", "report"]
