"""Mosquitto (Debian ``mosquitto`` 2.0) as a real MQTT broker for tests."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

from .ports import LOOPBACK, free_port
from .process import ManagedProcess

MOSQUITTO_BINARY = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD_BINARY = "/usr/bin/mosquitto_passwd"


class ServerTls(NamedTuple):
    """PEM files for a TLS listener: the CA that signed the server certificate, and the pair."""

    cafile: Path
    certfile: Path
    keyfile: Path


class Mosquitto(ManagedProcess):
    """A Mosquitto broker with its own config, persistence file, log and loopback port.

    Anonymous access, persistence on (``stop()`` sends SIGTERM, on which Mosquitto
    writes ``mosquitto.db``; it also autosaves every ``autosave_interval`` seconds,
    which is all that survives ``kill()``). Queues are sized so a burst of 100,000
    QoS 1 messages to a slow or absent persistent-session subscriber is kept, not
    dropped: ``max_queued_messages`` 1,000,000 and no byte limit.
    ``max_inflight_messages`` (QoS 1 messages sent to one client and not yet
    acknowledged) stays at Mosquitto's default of 20 unless given, because a
    gateway must work with brokers configured that way.

    ``users`` (name -> password) turns anonymous access off and writes a password
    file with ``mosquitto_passwd``; it applies to every listener. ``tls`` adds a
    second listener on ``tls_port`` that speaks MQTT over TLS with those files.
    """

    name = "mosquitto"

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        *,
        binary: str = MOSQUITTO_BINARY,
        max_queued_messages: int = 1_000_000,
        max_inflight_messages: int = 20,
        autosave_interval: int = 1,
        verbose: bool = False,
        extra_config: str = "",
        users: dict[str, str] | None = None,
        tls: ServerTls | None = None,
    ) -> None:
        super().__init__(workdir, port if port is not None else free_port(), LOOPBACK)
        found = shutil.which(binary)
        if found is None:
            raise FileNotFoundError(f"{binary} not found: apt-get install mosquitto")
        self.binary = found
        self.config_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self.persistence_dir = self.workdir / "persistence"
        self.persistence_dir.mkdir(exist_ok=True)
        self.max_queued_messages = max_queued_messages
        self.max_inflight_messages = max_inflight_messages
        self.autosave_interval = autosave_interval
        self.verbose = verbose
        self.extra_config = extra_config
        self.users = dict(users) if users else {}
        self.password_file = self.workdir / "passwords"
        self.tls = tls
        self.tls_port = free_port() if tls is not None else None

    @property
    def persistence_file(self) -> Path:
        return self.persistence_dir / "mosquitto.db"

    def config_text(self) -> str:
        """The mosquitto.conf this broker runs with."""
        lines = [
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'false' if self.users else 'true'}",
            "persistence true",
            f"persistence_location {self.persistence_dir}/",
            "persistence_file mosquitto.db",
            f"autosave_interval {self.autosave_interval}",
            f"max_queued_messages {self.max_queued_messages}",
            "max_queued_bytes 0",
            f"max_inflight_messages {self.max_inflight_messages}",
            "memory_limit 0",
            f"log_dest file {self.log_path}",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            "connection_messages true",
        ]
        log_types = ["all"] if self.verbose else ["error", "warning", "notice", "information"]
        lines += [f"log_type {t}" for t in log_types]
        if os.geteuid() == 0:
            # As root Mosquitto would switch to user "mosquitto", who cannot write here.
            lines.append(f"user {getpass.getuser()}")
        if self.users:
            lines.append(f"password_file {self.password_file}")
        if self.tls is not None:
            lines += [f"listener {self.tls_port} {self.host}", f"cafile {self.tls.cafile}",
                      f"certfile {self.tls.certfile}", f"keyfile {self.tls.keyfile}"]
        if self.extra_config:
            lines.append(self.extra_config)
        return "\n".join(lines) + "\n"

    def command(self) -> list[str]:
        self.config_path.write_text(self.config_text())
        if self.users:
            self._write_password_file()
        return [self.binary, "-c", str(self.config_path)]

    def _write_password_file(self) -> None:
        self.password_file.unlink(missing_ok=True)
        for name, password in self.users.items():
            create = [] if self.password_file.exists() else ["-c"]
            subprocess.run([MOSQUITTO_PASSWD_BINARY, "-b", *create, str(self.password_file),
                            name, password], check=True, capture_output=True)

    def log_text(self) -> str:
        """Mosquitto's own log file followed by anything it wrote to stdout/stderr."""
        try:
            own = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            own = ""
        return own + super().log_text()
