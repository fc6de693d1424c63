"""``edgeperf broker``: an embedded MQTT 3.1.1 broker (amqtt) for a laptop, the demo and tests.

Labs should run mosquitto or EMQX and point ``--broker`` at it; this one needs nothing but
Python. It runs its own asyncio loop on a daemon thread so synchronous code (the controller,
tests) can start and stop it like any other resource.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import Any

from agent.errors import EdgeperfError

log = logging.getLogger("edgeperf.broker")


class BrokerError(EdgeperfError):
    """The embedded broker could not start (port taken, amqtt missing)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    """amqtt on ``host:port`` with anonymous access, started and stopped from synchronous code."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port or free_port(host)
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="edgeperf-broker", daemon=True)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def _config(self) -> dict[str, Any]:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }

    def _serve(self) -> None:
        try:
            from amqtt.broker import Broker
        except ImportError:
            self._error = BrokerError("the embedded broker needs amqtt: pip install 'edgeperf[controller]'")
            self._ready.set()
            return

        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            broker = Broker(self._config())
            try:
                await broker.start()
            except Exception as exc:  # amqtt wraps bind errors in its own exception types
                self._error = BrokerError(f"cannot start the broker on {self.host}:{self.port}: {exc}")
                self._ready.set()
                return
            self._ready.set()
            await self._stop.wait()
            await broker.shutdown()

        logging.getLogger("amqtt").setLevel(logging.ERROR)
        logging.getLogger("transitions").setLevel(logging.ERROR)
        asyncio.run(main())

    def start(self, timeout_s: float = 10.0) -> EmbeddedBroker:
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise BrokerError(f"the broker did not start within {timeout_s:g} s")
        if self._error:
            raise self._error
        log.info("embedded broker listening on %s", self.url)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._loop and self._stop and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout_s)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
