"""One way to serve an ASGI app on loopback from a background thread, for the test servers."""

from __future__ import annotations

__all__ = ["ThreadedServer"]

import contextlib
import socket
import threading
import time
from typing import Any, Literal


class ThreadedServer:
    """uvicorn on ``127.0.0.1:<ephemeral port>`` in a daemon thread; ``start`` returns once it serves.

    The socket is bound here (port 0), so there is no race for a free port. It is made
    with ``IPPROTO_TCP`` explicitly: asyncio sets TCP_NODELAY only on accepted sockets whose
    protocol says TCP, and without it every keep-alive response waits ~40 ms for a
    delayed ACK (Nagle).
    """

    def __init__(
        self, app: Any, *, name: str, lifespan: Literal["auto", "on", "off"] = "off", access_log: bool = False
    ) -> None:
        self._app = app
        self._name = name
        self._lifespan = lifespan
        self._access_log = access_log
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.url: str | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, timeout: float = 10.0) -> str:
        """Serve; return the base URL. ``RuntimeError`` if it does not start within ``timeout``."""
        import uvicorn

        if self._thread is not None:
            raise RuntimeError(f"the {self._name} is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.bind(("127.0.0.1", 0))
            sock.listen(128)
            port = int(sock.getsockname()[1])
            config = uvicorn.Config(
                self._app,
                log_config=None,
                log_level="debug" if self._access_log else None,
                access_log=self._access_log,
                lifespan=self._lifespan,
                loop="asyncio",
                server_header=False,
                timeout_graceful_shutdown=5,
            )
            server = uvicorn.Server(config)

            def run() -> None:
                with contextlib.suppress(SystemExit):  # uvicorn exits when a lifespan startup fails
                    server.run(sockets=[sock])

            thread = threading.Thread(target=run, name=f"{self._name}-{port}", daemon=True)
            thread.start()
            deadline = time.monotonic() + timeout
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    server.should_exit = True
                    thread.join(timeout=5)
                    raise RuntimeError(f"the {self._name} did not start")
                time.sleep(0.002)
        except BaseException:
            sock.close()
            raise
        self._server, self._thread, self._socket = server, thread, sock
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    def stop(self) -> None:
        """Stop serving and release the port. Safe to call twice."""
        server, thread, sock = self._server, self._thread, self._socket
        self._server = self._thread = self._socket = None
        self.url = None
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout=10)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=5)
        if sock is not None:
            sock.close()
