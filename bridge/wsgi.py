"""The WSGI entry point for production servers: ``gunicorn 'bridge.wsgi:app'``.

Configured by the same environment variables as ``replyflow serve``; with ``REDIS_URL`` set the
jobs go to RQ (run ``replyflow worker``), so each gunicorn worker only answers webhooks.
"""

from __future__ import annotations

from bridge.app import create_app
from bridge.config import Settings
from bridge.runtime import build_runtime

__all__ = ["app"]

app = create_app(build_runtime(Settings.from_env()))
