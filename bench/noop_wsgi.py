"""The production app plus a no-op route, for the HTTP benchmark's baseline in the same server."""

from bridge.wsgi import app

app.add_url_rule("/noop", "noop", lambda: ("ok", 200), methods=["POST"])
