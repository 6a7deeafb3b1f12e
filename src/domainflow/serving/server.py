"""Run an ASGI app with uvicorn in a background thread: for tests, the benchmark, and `domainflow run`."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn


@contextmanager
def serve_in_background(
    app, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 120.0, log_level: str = "warning"
) -> Iterator[str]:
    """Yield the base URL once the app has started (its lifespan included); stop it cleanly on exit.

    Port 0 binds a free port; the socket is bound here, so the port is known before uvicorn starts.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{bound}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"the server on {host}:{bound} stopped during startup; its log says why")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server on {host}:{bound} did not start within {startup_timeout:.0f} s")
            time.sleep(0.02)
        yield f"http://[{host}]:{bound}" if family == socket.AF_INET6 else f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()
