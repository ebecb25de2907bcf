"""A probe for "no transaction is open while a platform answers": the emulators call it from inside
their answer to each API call (their ``on_call`` hooks).

It listens to every SQLAlchemy pool (the ``checkout``/``checkin`` events of the ``Pool`` class,
public API), so it sees every engine in the process, the CLI's own included; at each call it notes
the connections threads other than the emulator's hold and, on PostgreSQL, the backends "idle in
transaction". Used by tests/bridge/test_no_transaction_across_http.py (jobs) and
test_installs_no_transaction.py (install paths)."""

from __future__ import annotations

import threading

from sqlalchemy import create_engine, event, text
from sqlalchemy.pool import NullPool, Pool

__all__ = ["Probe"]


class Probe:
    """Connections held by threads other than the emulator's, seen from inside its answer to each call."""

    def __init__(self, postgres_url: str | None) -> None:
        self.held: dict[int, int] = {}
        self.calls: list[tuple[str, str, int, int]] = []  # method, path, connections held elsewhere, idle in tx
        self._lock = threading.Lock()
        self._admin = (create_engine(postgres_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
                       if postgres_url else None)
        event.listen(Pool, "checkout", self._out)
        event.listen(Pool, "checkin", self._in)

    def _out(self, *_) -> None:
        self._count(+1)

    def _in(self, *_) -> None:
        self._count(-1)

    def _count(self, step: int) -> None:
        with self._lock:
            me = threading.get_ident()
            self.held[me] = self.held.get(me, 0) + step

    def __call__(self, method: str, path: str) -> None:
        me = threading.get_ident()
        with self._lock:
            elsewhere = sum(n for thread, n in self.held.items() if thread != me and n > 0)
        idle = 0
        if self._admin is not None:
            with self._admin.connect() as conn:
                idle = conn.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                        "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"))
        with self._lock:
            self.calls.append((method, path, elsewhere, idle))

    def held_during(self, path_part: str) -> list[tuple[str, str, int, int]]:
        seen = [c for c in self.calls if path_part in c[1]]
        assert seen, f"no call to {path_part} was made: {self.calls}"
        return [c for c in seen if c[2] or c[3]]

    def close(self) -> None:
        event.remove(Pool, "checkout", self._out)
        event.remove(Pool, "checkin", self._in)
        if self._admin is not None:
            self._admin.dispose()
