"""A bare Flask app with one no-op route: the issue's reference point ("a no-op Flask route under
gunicorn"), measured in the same run as replyflow's own routes."""

from flask import Flask

app = Flask(__name__)
app.add_url_rule("/noop", "noop", lambda: ("ok", 200), methods=["POST"])
