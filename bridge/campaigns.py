"""Campaigns from a segment file: stream the CSV, decide it batch by batch, hand the queued rows to the sender.

The file is read with ``csv.DictReader`` row by row and decided in batches (one transaction
each), so memory stays flat however many contacts it holds. After each batch commits, its
queued rows are enqueued as ``send_batch`` jobs of up to ``bridge.bulk.BATCH`` rows, so sending
overlaps reading. A campaign that
stopped (a crash, Ctrl-C) continues where it stopped when the same command is run again.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import itertools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from sqlalchemy import select

from core import campaigns as core
from core.campaigns import CampaignError, Tally
from core.store import session_scope
from core.store.models import Campaign, Channel, Workspace
from bridge.bulk import chunks
from bridge.runtime import Runtime

__all__ = ["CampaignSpec", "Progress", "Report", "CampaignError", "parse_params", "check_segment", "scan_segment",
           "read_segment", "send_campaign", "process_rows", "campaign_status", "ConsoleProgress", "print_report",
           "print_status"]

_log = logging.getLogger(__name__)
BATCH_SIZE = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignSpec:
    name: str
    template: str
    segment: Path
    params: Mapping[str, str] = field(default_factory=dict)
    language: str | None = None
    workspace: str = "default"


@dataclass(slots=True, kw_only=True)
class Progress:
    """Where a run is: rows decided in this run (``tally``), of about ``total`` data rows."""

    campaign_id: int
    total: int | None
    resumed_at: int  # rows the campaign had already processed when this run began
    tally: Tally = field(default_factory=Tally)
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.tally.rows / elapsed if elapsed > 0 else 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    campaign_id: int
    resumed_at: int
    tally: Tally
    total: dict  # the campaign's counters over all its runs
    outbox: dict[str, int]  # the campaign's outbox rows by status


def parse_params(pairs: Iterable[str]) -> dict[str, str]:
    """``["cart_total=€10", ...]`` → a dict; raises ``CampaignError`` for an item without ``=``."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CampaignError(f"--param {pair!r}: expected KEY=VALUE")
        params[key.strip().lower()] = value.strip()
    return params


def check_segment(path: Path) -> None:
    """The file exists and its header names a ``phone`` column."""
    if not path.is_file():
        raise CampaignError(f"segment file not found: {path}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), None)
    except UnicodeDecodeError:  # the header or a line after it, read in the same buffer
        scan_segment(path)  # raises CampaignError naming the line
        raise
    columns = {c.strip().lower() for c in header or ()}
    if "phone" not in columns:
        raise CampaignError(f"segment {path.name}: the first line must name the columns, one of them 'phone' "
                            f"(found: {', '.join(sorted(columns)) or 'nothing'})")


def scan_segment(path: Path) -> tuple[str, int]:
    """The file's sha256, and about how many data rows it has (lines after the header), in one pass;
    ``CampaignError`` naming the line when the file is not UTF-8 (before any row is sent)."""
    digest, lines, last = hashlib.sha256(), 0, b"\n"
    utf8 = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            try:
                utf8.decode(chunk)
            except UnicodeDecodeError as exc:
                line = lines + chunk[:max(exc.start, 0)].count(b"\n") + 1
                raise CampaignError(f"segment {path.name}: line {line} is not UTF-8 text; save the file as UTF-8 "
                                    "(in a spreadsheet: CSV UTF-8)") from None
            digest.update(chunk)
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    try:
        utf8.decode(b"", final=True)
    except UnicodeDecodeError:
        raise CampaignError(f"segment {path.name}: the last line is not UTF-8 text; save the file as UTF-8") from None
    lines += last != b"\n"  # a last line without a newline
    return digest.hexdigest(), max(lines - 1, 0)


def read_segment(path: Path) -> Iterator[tuple[int, dict]]:
    """``(row number, row)`` for every data row, numbered from 1, streamed."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        yield from enumerate(csv.DictReader(f), start=1)


def _workspace(s, slug: str) -> Workspace:
    ws = s.scalar(select(Workspace).where(Workspace.slug == slug))
    if ws is None:
        raise CampaignError(f"no workspace {slug!r}")
    return ws


def _start(rt: Runtime, spec: CampaignSpec, sha: str) -> tuple[int, int]:
    with session_scope(rt.db) as s:
        ws = _workspace(s, spec.workspace)
        c = core.start_campaign(s, workspace_id=ws.id, name=spec.name, template=spec.template,
                                language=spec.language, params=spec.params, segment_path=str(spec.segment),
                                segment_sha256=sha, catalogue=rt.catalogue, now=rt.clock.now())
        return c.id, c.last_row


def _batch(rt: Runtime, campaign_id: int, rows: list) -> core.BatchResult:
    now = rt.clock.now()
    with session_scope(rt.db) as s:
        c = s.get(Campaign, campaign_id)
        ws = s.get(Workspace, c.workspace_id)
        channel = s.scalar(select(Channel.id).where(Channel.workspace_id == ws.id).order_by(Channel.id))
        if channel is None:
            raise CampaignError(f"workspace {ws.slug!r} has no WhatsApp number")
        return core.send_rows(s, c, rows, now=now, catalogue=rt.catalogue, policy=rt.flow_context(ws).policy,
                              channel_id=channel, erase_salt=rt.settings.erase_salt)


def process_rows(rt: Runtime, campaign_id: int, rows: Iterable[tuple[int, Mapping]], *,
                 batch_size: int = BATCH_SIZE, progress: Progress | None = None,
                 on_batch: Callable[[Progress], None] | None = None) -> Progress:
    """Decide ``rows`` in batches of ``batch_size``, one transaction each; after each commit,
    enqueue the batch's queued rows for sending and report progress."""
    progress = progress or Progress(campaign_id=campaign_id, total=None, resumed_at=0)
    source = iter(rows)
    while batch := list(itertools.islice(source, batch_size)):
        result = _batch(rt, campaign_id, batch)
        for ids in chunks(result.queued_ids):
            rt.queue.enqueue("send_batch", ids)
        progress.tally.merge(result.tally)
        _log.info("campaign %s: %d rows decided (%d queued, %d deferred, %d skipped)", campaign_id,
                  progress.tally.rows, progress.tally.queued, progress.tally.deferred, progress.tally.skipped)
        if on_batch is not None:
            on_batch(progress)
    return progress


def send_campaign(rt: Runtime, spec: CampaignSpec, *, batch_size: int = BATCH_SIZE,
                  on_start: Callable[[Progress], None] | None = None,
                  on_batch: Callable[[Progress], None] | None = None) -> Report:
    """Start or resume the campaign ``spec.name`` and decide every row of its segment."""
    check_segment(spec.segment)
    sha, total = scan_segment(spec.segment)
    campaign_id, resumed_at = _start(rt, spec, sha)
    progress = Progress(campaign_id=campaign_id, total=max(total - resumed_at, 0), resumed_at=resumed_at)
    if on_start is not None:
        on_start(progress)
    rows = itertools.dropwhile(lambda item: item[0] <= resumed_at, read_segment(spec.segment))
    process_rows(rt, campaign_id, rows, batch_size=batch_size, progress=progress, on_batch=on_batch)
    with session_scope(rt.db) as s:
        core.finish_campaign(s, s.get(Campaign, campaign_id), rt.clock.now())
    status = campaign_status(rt, spec.name, spec.workspace)
    return Report(campaign_id=campaign_id, resumed_at=resumed_at, tally=progress.tally,
                  total=status["campaign"], outbox=status["outbox"])


def _find(s, workspace_id: int, name: str) -> Campaign | None:
    """The campaign by name, else by the number ``send`` shows (``7`` or ``#7``)."""
    found = core.find_campaign(s, workspace_id, name)
    number = name.strip().removeprefix("#")
    if found is None and number.isascii() and number.isdigit() and len(number) <= 18:  # (no overflow in the database)
        found = s.scalar(select(Campaign).where(Campaign.workspace_id == workspace_id, Campaign.id == int(number)))
    return found


def campaign_status(rt: Runtime, name: str, workspace: str = "default") -> dict:
    """The campaign's record and its outbox rows by status; ``name`` may be its number."""
    with session_scope(rt.db) as s:
        c = _find(s, _workspace(s, workspace).id, name)
        if c is None:
            raise CampaignError(f"no campaign {name!r}")
        record = {k: getattr(c, k) for k in ("id", "name", "template", "language", "params", "segment_path",
                                              "segment_sha256", "status", "last_row", "rows_read", *core.KINDS,
                                              "skip_reasons", "created_at", "updated_at", "finished_at")}
        return {"campaign": record, "outbox": core.outbox_counts(s, c.id)}


# ---------------------------------------------------------------- the terminal


def _counts(t: Tally) -> str:
    return f"queued {t.queued}, deferred {t.deferred}, skipped {t.skipped}, failed {t.failed}, already {t.already}"


class ConsoleProgress:
    """``on_start``/``on_batch`` callbacks: a live bar on a terminal, else a plain line every ``every`` s."""

    def __init__(self, console: Console, name: str, every: float = 5.0) -> None:
        self.console, self.name, self.every = console, name, every
        self._bar: RichProgress | None = None
        self._task = None
        self._last = 0.0

    def on_start(self, p: Progress) -> None:
        where = f"resuming after row {p.resumed_at}" if p.resumed_at else "starting"
        self.console.print(Text(f"campaign {self.name} (#{p.campaign_id}): {where}, about {p.total} rows to read"))
        if not self.console.is_terminal:
            return
        self._bar = RichProgress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[counts]}"), TextColumn("{task.fields[rate]:.0f} rows/s"),
                                 TimeElapsedColumn(), console=self.console, transient=False)
        self._task = self._bar.add_task("rows", total=p.total or None, counts="", rate=0.0)
        self._bar.start()

    def on_batch(self, p: Progress) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=p.tally.rows, counts=_counts(p.tally), rate=p.rate)
            return
        if time.monotonic() - self._last >= self.every:
            self._last = time.monotonic()
            self.console.print(Text(f"rows {p.tally.rows}/{p.total}: {_counts(p.tally)} ({p.rate:.0f} rows/s)"))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _reasons_table(reasons: Mapping[str, int]) -> Table:
    table = Table(title="skipped, by reason", title_justify="left")
    table.add_column("reason", overflow="fold")
    table.add_column("rows", justify="right")
    for reason, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
        table.add_row(Text(reason), str(count))
    return table


def print_report(console: Console, report: Report) -> None:
    t = report.tally
    console.print(Text(f"read {t.rows} rows: {_counts(t)}"))
    if t.deferred:
        console.print(Text(f"{t.deferred} deferred message(s) wait for the quiet hours to end; the sweeper "
                           "(replyflow serve or worker) sends them when due"))
    if t.reasons:
        console.print(_reasons_table(t.reasons))
    c = report.total
    console.print(Text(f"campaign {c['name']} (#{c['id']}) {c['status']}: {c['rows_read']} rows in all, "
                       f"{c['queued']} queued, {c['deferred']} deferred, {c['skipped']} skipped, {c['failed']} failed, "
                       f"{c['already']} already queued"))


_REACHED = ("accepted", "sent", "delivered", "read", "played")


def print_status(console: Console, status: dict) -> None:
    c, outbox = status["campaign"], status["outbox"]
    console.print(Text(f"campaign {c['name']} (#{c['id']}): {c['template']} ({c['language']}), {c['status']}", style="bold"))
    console.print(Text(f"  segment: {c['segment_path']} (sha256 {c['segment_sha256'][:12]}…), {c['last_row']} rows done"))
    console.print(Text(f"  rows: {c['rows_read']} read, {c['queued']} queued, {c['deferred']} deferred, "
                       f"{c['skipped']} skipped, {c['failed']} failed, {c['already']} already queued"))
    sent = sum(outbox.get(k, 0) for k in _REACHED)
    delivered = sum(outbox.get(k, 0) for k in _REACHED[2:])
    read = sum(outbox.get(k, 0) for k in _REACHED[3:])
    console.print(Text(f"  messages: {outbox.get('queued', 0) + outbox.get('sending', 0)} waiting, {sent} sent, {delivered} delivered, "
                       f"{read} read, {outbox.get('failed', 0)} failed, {outbox.get('unknown', 0)} unknown"))
    if c["skip_reasons"]:
        console.print(_reasons_table(c["skip_reasons"]))
