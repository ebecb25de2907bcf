"""Run a WSGI app on a loopback port in a background thread (demo, tests, local emulators)."""

from __future__ import annotations

import socket
import threading

from werkzeug.serving import make_server

__all__ = ["ServerThread", "bind_error"]


def bind_error(host: str, port: int) -> OSError | None:
    """Why a server could not listen on ``host:port`` (e.g. another program holds the port), or
    None: the bind the server will do, tried and undone."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc
    return None


class ServerThread:
    def __init__(self, app, host: str = "127.0.0.1", port: int = 0) -> None:
        if port and (exc := bind_error(host, port)) is not None:
            raise exc  # werkzeug would print its own advice about "the server" and exit
        self._server = make_server(host, port, app, threaded=True)
        self.url = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"wsgi-{self.url}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> "ServerThread":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
