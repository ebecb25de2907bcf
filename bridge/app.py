"""The Flask application factory."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from bridge import api, inbox, webhooks
from bridge import health, hubspot_oauth, observability, shopify_app, woocommerce_connect
from bridge.runtime import Runtime, set_runtime

__all__ = ["create_app"]

MAX_BODY = 6 * 1024 * 1024  # above every platform's documented maximum (WhatsApp 3 MB, Shopify 5 MB)


class _RowId(IntegerConverter):
    """``<int:...>`` up to the largest database id: a longer number is a 404, not an overflow (500)."""

    def __init__(self, map, *args, **kwargs) -> None:  # noqa: A002 (werkzeug's name)
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(map, *args, **kwargs)


def _record_database(runtime: Runtime) -> None:
    """Tell the workers which database this bridge uses (they refuse to start on another)."""
    redis = health.redis_client(runtime.settings.redis_url)
    try:
        health.record_bridge_database(runtime.db, redis)
    except Exception:  # noqa: BLE001 - Redis may be down: the bridge still takes webhooks
        logging.getLogger(__name__).warning("could not record this bridge's database in Redis", exc_info=True)
    finally:
        redis.close()


def create_app(runtime: Runtime) -> Flask:
    app = Flask("replyflow")
    app.url_map.converters["int"] = _RowId  # before any route is added
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.extensions["replyflow"] = runtime
    if runtime.settings.trusted_proxies:  # the client's address and scheme as the proxy saw them
        hops = runtime.settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    set_runtime(runtime)  # jobs run by the in-process runner find the same runtime
    if runtime.settings.redis_url:
        _record_database(runtime)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(inbox.bp)
    app.register_blueprint(woocommerce_connect.bp)
    app.register_blueprint(shopify_app.bp)
    app.register_blueprint(hubspot_oauth.bp)
    observability.init_app(app)

    @app.get("/healthz")
    def healthz():
        body, status = health.healthz(runtime)
        return jsonify(body), status

    @app.errorhandler(413)
    def too_large(_exc):
        return jsonify(error=f"body larger than {MAX_BODY // (1024 * 1024)} MB"), 413

    @app.errorhandler(404)
    def not_found(_exc):
        return jsonify(error="not found"), 404

    @app.errorhandler(405)
    def wrong_method(_exc):
        return jsonify(error="method not allowed"), 405

    return app
