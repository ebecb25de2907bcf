"""Sign-in throttling: failed sign-ins counted in the database, per email and per client address,
so every bridge process (and every machine) counts the same failures.

An attempt is counted as a failure *before* its password is checked (``attempt``) and taken back
when the password was right (``succeeded``): a burst of parallel guesses cannot all get in before
the first failure is written. Each count is one row, locked while it changes (an UPDATE first: a
row lock on PostgreSQL, the write lock on SQLite), so two processes never both miss a failure.
An unknown email is counted and locked like a known one: the answer never says which emails exist.

Rows whose failures have all left the window and whose lockout is over count for nothing (a row
like that and no row at all give the same answer), so every attempt deletes up to ``FORGET_BATCH``
of them: a guesser cycling through made-up emails would otherwise grow the table by a row a guess,
forever. Rows another attempt holds are skipped, never waited for (no lock-order deadlock).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.store.models import SignInThrottle

__all__ = ["Rule", "EMAIL", "ADDRESS", "Refusal", "FORGET_BATCH", "attempt", "succeeded", "clear", "email_key"]

_KEY = 320  # SignInThrottle.key's length: longer input is cut, never an error
# stale rows deleted per attempt: well above the two rows an attempt can add, small enough to keep
# a sign-in quick
FORGET_BATCH = 200


@dataclass(frozen=True)
class Rule:
    """``limit`` failures within ``window`` lock the key for ``cooldown``."""

    scope: str  # email | address
    limit: int
    window: timedelta
    cooldown: timedelta
    wording: str  # what is locked, as the refusal says it


EMAIL = Rule("email", 5, timedelta(minutes=15), timedelta(minutes=15), "for this account")
# higher than the email's: one office (or one proxy) is a single address for all of its agents
ADDRESS = Rule("address", 20, timedelta(minutes=15), timedelta(minutes=15), "from this network address")


@dataclass(frozen=True)
class Refusal:
    """An attempt refused without checking its password: the key is locked until ``until``."""

    rule: Rule
    until: datetime

    @property
    def message(self) -> str:
        shown = self.until.replace(second=0, microsecond=0)
        if shown < self.until:
            shown += timedelta(minutes=1)  # "try again at" never names a minute that is still locked
        return f"Too many failed sign-ins {self.rule.wording}; try again at {shown:%H:%M} UTC."

    def retry_after(self, now: datetime) -> int:
        """Whole seconds until the lockout ends, for the Retry-After header."""
        return max(1, math.ceil((self.until - now).total_seconds()))


def email_key(email: str) -> str:
    return email.strip().lower()[:_KEY]


def _row(s: Session, rule: Rule, key: str, now: datetime) -> SignInThrottle:
    """The rule's row for ``key``, locked until the transaction ends (made when missing)."""
    where = (SignInThrottle.scope == rule.scope, SignInThrottle.key == key)
    touch = update(SignInThrottle).where(*where).values(updated_at=now).execution_options(synchronize_session=False)
    if s.execute(touch).rowcount == 0:
        try:
            with s.begin_nested():
                s.add(SignInThrottle(scope=rule.scope, key=key, failures=[], updated_at=now))
                s.flush()
        except IntegrityError:
            s.execute(touch)  # another process made it meanwhile: wait for its lock
    return s.scalars(select(SignInThrottle).where(*where).execution_options(populate_existing=True)).one()


def _recent(row: SignInThrottle, rule: Rule, now: datetime) -> list[str]:
    start = now - rule.window
    return [t for t in row.failures if datetime.fromisoformat(t) > start]


def attempt(s: Session, *, email: str, address: str, now: datetime) -> Refusal | None:
    """Before a password is checked: a Refusal while the email or the address is locked out;
    otherwise the attempt is counted as a failure now (``succeeded`` takes it back), and the
    failure that reaches a rule's limit locks its key for the rule's cooldown."""
    # the email's row first, always: two attempts lock their rows in the same order
    rows = [(rule, _row(s, rule, key, now)) for rule, key in ((EMAIL, email_key(email)), (ADDRESS, address[:_KEY]))]
    refusals = [Refusal(rule, row.locked_until) for rule, row in rows
                if row.locked_until is not None and row.locked_until > now]
    if not refusals:
        for rule, row in rows:
            row.failures = [*_recent(row, rule, now), now.isoformat()]
            row.locked_until = now + rule.cooldown if len(row.failures) >= rule.limit else None
    _forget_stale(s, now)  # refused attempts too: a locked-out guesser still makes a row for each new email
    return refusals[0] if refusals else None


def _forget_stale(s: Session, now: datetime) -> None:
    """Delete up to FORGET_BATCH rows that count for nothing any more: last touched before the
    longest window (every failure is older: each one touches its row) and not locked out. After
    this attempt's own rows are locked, and skipping rows locked by others (FOR UPDATE SKIP
    LOCKED on PostgreSQL; SQLite has one writer at a time), so it never waits on anyone."""
    before = now - max(EMAIL.window, ADDRESS.window)
    ids = s.scalars(select(SignInThrottle.id)
                    .where(SignInThrottle.updated_at < before,
                           or_(SignInThrottle.locked_until.is_(None), SignInThrottle.locked_until <= now))
                    .limit(FORGET_BATCH)
                    .with_for_update(skip_locked=True)).all()
    if ids:
        s.execute(delete(SignInThrottle).where(SignInThrottle.id.in_(ids))
                  .execution_options(synchronize_session=False))


def succeeded(s: Session, *, email: str, address: str, at: datetime) -> None:
    """The attempt counted at ``at`` had the right password: the email's failures are forgotten,
    the address loses that one (its other failures still count)."""
    clear(s, email)
    row = _row(s, ADDRESS, address[:_KEY], at)
    failures = _recent(row, ADDRESS, at)
    if at.isoformat() in failures:
        failures.remove(at.isoformat())
    if not failures:
        s.delete(row)
        return
    row.failures = failures
    if len(failures) < ADDRESS.limit:
        row.locked_until = None  # the lock counted this attempt as a failure; without it there is none


def clear(s: Session, email: str) -> None:
    """Forget an email's failures and lift its lockout (a right password, or an admin's reset)."""
    s.execute(delete(SignInThrottle).where(SignInThrottle.scope == EMAIL.scope,
                                           SignInThrottle.key == email_key(email)))
