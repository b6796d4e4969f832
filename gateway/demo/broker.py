"""An MQTT broker inside this process (amqtt), for a demo on a machine with none installed.

amqtt speaks MQTT 3.1.1 only, so a gateway using it sets `mqtt.protocol: 3.1.1`.
It runs on its own thread and event loop, so a busy gateway cannot starve it.
For production use Mosquitto (deploy/mosquitto/gateway.conf).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import Any

log = logging.getLogger("gateway.demo")


class EmbeddedBroker:
    """amqtt listening on host:port until stop()."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Any = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 15.0) -> None:
        try:
            from amqtt.broker import Broker  # noqa: F401 - fail early with a clear message
        except ImportError:
            raise RuntimeError("the embedded broker needs amqtt: pip install 'edge-gateway[demo]'"
                               ", or give --broker HOST:PORT of a broker you run") from None
        # amqtt logs every connection at INFO: too much beside the live view.
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self._thread = threading.Thread(target=self._run, name="embedded-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the embedded broker did not start on {self.host}:{self.port}")
        if self._error is not None:
            raise RuntimeError(f"the embedded broker could not start on {self.host}:{self.port}: "
                               f"{self._error}")

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
            loop.run_forever()
        finally:
            loop.close()

    async def _serve(self) -> None:
        from amqtt.broker import Broker

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                        {"allow_anonymous": True}},
        }
        try:
            self._broker = Broker(config)
            await self._broker.start()
        except Exception as exc:  # noqa: BLE001 - reported to start()'s caller
            self._error = exc
        self._ready.set()

    def stop(self) -> None:
        loop = self._loop
        if loop is None or self._broker is None:
            return
        done = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), loop)
        try:
            done.result(timeout=10)
        except Exception as exc:  # noqa: BLE001 - stopping anyway
            log.warning("embedded broker did not shut down cleanly: %s", exc)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False
