"""Everything a job or a view needs, built once per process: settings, database, clock,
job runner, flows, templates and the WhatsApp client.

Jobs take ids; they reach the database and clients through ``get_runtime()``, which an RQ
worker process builds from the environment on first use and an app or test installs with
``set_runtime``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable

from connectors.whatsapp.client import GRAPH_BASE, BulkClient, CloudApiClient
from core.clock import Clock, SystemClock
from core.flows import versions
from core.flows.definition import Flow, load_flow, shipped_flows
from core.flows.runs import Context
from core.sealed import Sealer
from core.store import Database, session_scope
from core.store.db import startup_lock
from core.store.models import Channel, Workspace
from core.template_files import load_folder, merge_catalogues
from core.templates import Catalogue, default_catalogue
from bridge.config import Settings, SettingsError

__all__ = ["Runtime", "get_runtime", "set_runtime", "has_runtime", "build_runtime", "graph_base"]


@dataclass
class Runtime:
    settings: Settings
    db: Database
    clock: Clock
    catalogue: Catalogue
    flows: dict[str, Flow]
    queue: Any = None  # bridge.queue.Runner, set by build_runtime
    client_factory: Callable[[], CloudApiClient] | None = None
    limiter: Any = None  # bridge.ratelimit.RateLimiter, set by build_runtime
    pair_limiter: Any = None  # bridge.ratelimit.LocalPairLimiter / RedisPairLimiter, set by build_runtime
    _sealer: Sealer | None = field(default=None, repr=False)
    _client: CloudApiClient | None = field(default=None, repr=False)

    @property
    def whatsapp(self) -> CloudApiClient:
        if self._client is None:
            self._client = self.client_factory() if self.client_factory else _default_client(self.settings)
        return self._client

    @property
    def bulk_client(self) -> BulkClient:
        """The bulk sender's transport (aiohttp); cheap to build, it holds no connection."""
        st = self.settings
        return BulkClient(access_token=st.whatsapp_access_token, phone_number_id=st.whatsapp_phone_number_id,
                          base_url=graph_base(st), api_version=st.whatsapp_api_version,
                          max_in_flight=st.whatsapp_max_in_flight, timeout=st.whatsapp_timeout)

    @property
    def sealer(self) -> Sealer:
        """Seals and opens platform credentials (REPLYFLOW_SECRET_KEY)."""
        if self._sealer is None:
            from bridge.secret_keys import sealing_keys_for

            self._sealer = Sealer(sealing_keys_for(self.settings))
        return self._sealer

    def flow_context(self, workspace: Workspace) -> Context:
        settings = {"cart_abandon_delay": self.settings.cart_abandon_delay, **(workspace.settings or {})}
        return Context(flows=self.flows, catalogue=self.catalogue, settings=settings)

    def close(self) -> None:
        if self.queue is not None:
            self.queue.close()
        if self._client is not None:
            self._client.close()
        self.db.dispose()


def graph_base(settings: Settings) -> str:
    """Where messages go: WHATSAPP_API_BASE, else the Graph API; never the Graph API with the
    sandbox's made-up token (a command run beside `replyflow serve` cannot reach its sandbox)."""
    if settings.whatsapp_api_base:
        return settings.whatsapp_api_base
    if settings.sandbox:
        raise SettingsError("WHATSAPP_ACCESS_TOKEN is not set, so replyflow is in sandbox mode, and this process "
                            "has no sandbox to send to: set WHATSAPP_API_BASE to the sandbox address that "
                            "`replyflow serve` prints, or connect a real number (WHATSAPP_ACCESS_TOKEN, see README)")
    return GRAPH_BASE


def _default_client(settings: Settings) -> CloudApiClient:
    return CloudApiClient(access_token=settings.whatsapp_access_token,
                          phone_number_id=settings.whatsapp_phone_number_id,
                          base_url=graph_base(settings),
                          api_version=settings.whatsapp_api_version, timeout=settings.whatsapp_timeout)


def load_flows(folder: str | None) -> dict[str, Flow]:
    """The shipped flows, and the workspace's own from ``folder`` (a file replaces a shipped flow
    of the same name)."""
    flows = shipped_flows()
    if folder:
        for path in sorted(Path(folder).glob("*.y*ml")):
            flow = load_flow(path.read_text(encoding="utf-8"), source=str(path))
            flows[flow.name] = flow
    return flows


def ensure_defaults(db: Database, settings: Settings) -> None:
    """The embedded default: one workspace and its WhatsApp number, created on first start."""
    with session_scope(db) as s:
        startup_lock(s)  # workers started at once must not both create it
        ws = s.query(Workspace).filter_by(slug="default").one_or_none()
        if ws is None:
            ws = Workspace(slug="default", name=settings.workspace_name, settings={})
            s.add(ws)
            s.flush()
        if s.query(Channel).filter_by(phone_number_id=settings.whatsapp_phone_number_id).one_or_none() is None:
            s.add(Channel(workspace_id=ws.id, phone_number_id=settings.whatsapp_phone_number_id,
                          display_phone=settings.whatsapp_display_phone, waba_id=settings.whatsapp_waba_id))


def build_runtime(settings: Settings, *, clock: Clock | None = None, queue: Any = None,
                  client_factory: Callable[[], CloudApiClient] | None = None) -> Runtime:
    from bridge.queue import make_runner  # the runner imports jobs, which import this module
    from bridge.ratelimit import LocalLimiter, LocalPairLimiter, RedisLimiter, RedisPairLimiter

    db = Database(settings.database_url)
    db.upgrade()
    ensure_defaults(db, settings)
    flows = load_flows(settings.flows_dir)
    clock = clock or SystemClock()
    with session_scope(db) as s:
        startup_lock(s)
        versions.record(s, flows.values(), clock.now())
    catalogue = default_catalogue()
    if settings.templates_dir:
        catalogue = merge_catalogues(catalogue, load_folder(settings.templates_dir))
    runtime = Runtime(settings=settings, db=db, clock=clock, catalogue=catalogue,
                      flows=flows, client_factory=client_factory)
    runtime.queue = queue if queue is not None else make_runner(settings)
    db.on_commit = lambda jobs: _enqueue_after_commit(runtime, jobs)
    redis = getattr(runtime.queue, "redis", None)
    runtime.limiter = RedisLimiter(redis) if redis is not None else LocalLimiter()
    runtime.pair_limiter = RedisPairLimiter(redis) if redis is not None else LocalPairLimiter()
    return runtime


def _enqueue_after_commit(runtime: Runtime, jobs: set[tuple]) -> None:
    for name, *args in sorted(jobs):
        try:
            runtime.queue.enqueue(name, *args)
        except Exception:  # the work is in the tables: the sweeper enqueues it again
            import logging
            logging.getLogger(__name__).exception("could not enqueue %s%s; the sweeper will", name, tuple(args))


_current: Runtime | None = None
_lock = threading.Lock()
# called with the settings just before ``get_runtime`` first builds this process's runtime: the
# CLI's note that a command is about to start a new SQLite file (not printed for --help)
before_build: Callable[[Settings], None] | None = None


def set_runtime(runtime: Runtime | None) -> None:
    global _current
    with _lock:
        _current = runtime


def has_runtime() -> bool:
    """Whether this process already has its runtime (a test or an embedding set one)."""
    with _lock:
        return _current is not None


def get_runtime() -> Runtime:
    global _current
    with _lock:
        if _current is None:
            settings = Settings.from_env()
            if before_build is not None:
                before_build(settings)
            _current = build_runtime(settings)
        return _current
