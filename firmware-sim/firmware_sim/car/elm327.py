"""An ELM327 v1.5 OBD-II adapter on a pseudo-terminal: AT commands, protocol search, and
the engine ECU's answers formatted as the chip prints them.

What it prints follows the ELM327 data sheet (ELM327DSJ) and logs of real adapters:

- Every answer ends with a blank line and the prompt: `OK\\r\\r>`. With echo on
  (the default, until ATE0) the command comes back first, with its CR, so the
  usual init `ATZ`, `ATE0` reads `ATZ\\r\\r\\rELM327 v1.5\\r\\r>`, `ATE0\\rOK\\r\\r>`.
  ATL1 puts a LF after every CR; ATS0 drops the spaces between bytes; ATH1
  shows headers (CAN: `7E8`, then the whole 8-byte frame, PCI byte and padding
  included; ISO 9141-2: `48 6B 10`, the data, then the checksum byte).
- Commands are case-insensitive, spaces and control characters are ignored,
  a bare CR repeats the last command, and anything not understood gets `?`.
  An odd last hex digit on an OBD request is the "number of responses" hint
  and is accepted (`010C1`).
- ATSP n sets (and keeps across ATZ) the protocol; ATSP0 / ATSP An search. The
  first OBD request after a reset with search on prints `SEARCHING...` before
  the answer, or `SEARCHING...` then `UNABLE TO CONNECT` when no ECU answers
  (ignition off). Once a protocol is in use, or when one is set, a silent ECU
  gives `NO DATA`; so does a PID the ECU does not support. A fixed ISO
  9141-2 / KWP protocol prints `BUS INIT: ...OK` (or `...ERROR`) on first use.
  ATDP / ATDPN say `AUTO, ISO 15765-4 (CAN 11/500)` / `A6` once found.
- ATRV reads the battery at the OBD socket (pin 16 is always live, so it
  answers with the ignition off too): `12.5V`.

The van's ECU speaks ISO 15765-4 CAN 11 bit 500 kbaud (protocol 6) unless
the device's `bus:` says 3 (ISO 9141-2, as cars before about 2008 did).

Not modelled: timing (answers come at once), ATMA and other monitoring, CAN
filters and masks, more than one ECU, the low-power mode.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from firmware_sim.car.ecu import EngineEcu
from firmware_sim.car.pty import PseudoTerminal
from firmware_sim.car.vehicle import Vehicle
from firmware_sim.devices.base import ScenarioError, SimDevice
from firmware_sim.engine import Simulation
from firmware_sim.network import Network

log = logging.getLogger("firmware_sim.car.elm327")

VERSION = "ELM327 v1.5"
DESCRIPTION = "OBDII to RS232 Interpreter"  # AT@1, the data sheet's default text

PROTOCOLS = {
    1: "SAE J1850 PWM", 2: "SAE J1850 VPW", 3: "ISO 9141-2", 4: "ISO 14230-4 (KWP 5BAUD)",
    5: "ISO 14230-4 (KWP FAST)", 6: "ISO 15765-4 (CAN 11/500)", 7: "ISO 15765-4 (CAN 29/500)",
    8: "ISO 15765-4 (CAN 11/250)", 9: "ISO 15765-4 (CAN 29/250)", 10: "SAE J1939 (CAN 29/250)",
    11: "USER1 (CAN 11/125)", 12: "USER2 (CAN 11/50)",
}
CAN_PROTOCOLS = range(6, 13)
INIT_PROTOCOLS = (3, 4, 5)  # need a bus initialisation (5-baud or fast init) first
BUSES = (3, 6)  # what the simulated ECU can speak

# Settings that exist on the chip but change nothing here: accepted with OK.
_ACCEPTED = re.compile(
    r"^(?:AT[012]|ST[0-9A-F]{2}|AL|NL|AR|CAF[01]|CFC[01]|D[01]|M[01]|PC|KW[01]|"
    r"IB(?:10|48|96)|SW[0-9A-F]{2}|SH[0-9A-F]{3}(?:[0-9A-F]{3}(?:[0-9A-F]{2})?)?|"
    r"CRA[0-9A-F]{3}|CV\d{4}|FE|JE|JS|MT[0-9A-F]{2})$")
_FUNCTIONAL = ("7DF", "7E0")  # CAN request headers the engine ECU listens to
_HEX = re.compile(r"^[0-9A-F]+$")


class Elm327:
    """The chip's command interpreter: one command line in, the bytes it prints out."""

    def __init__(self, ecu: EngineEcu, bus: int = 6, linefeeds: bool = False) -> None:
        self.ecu = ecu
        self.bus = bus
        self.default_linefeeds = linefeeds
        self.saved_protocol, self.saved_auto = 0, True  # ATSP writes these to EEPROM
        self.last = ""
        self.requests = 0
        self._defaults()

    def _defaults(self) -> None:
        self.echo, self.linefeeds, self.spaces, self.headers = (
            True, self.default_linefeeds, True, False)
        self.protocol, self.auto = self.saved_protocol, self.saved_auto
        self.active: int | None = None  # the protocol found or initialised
        self.header = ""  # ATSH; "" = the protocol's default (functional 7DF on CAN)

    def handle(self, received: bytes) -> bytes:
        """Answer one line (without its CR), echo and prompt included."""
        typed = "".join(ch for ch in received.decode("ascii", "replace") if ch.isprintable())
        out = typed + "\r" if self.echo else ""
        command = typed.replace(" ", "").upper()
        if not command:
            command = self.last
        self.last = command
        if not command:
            text = out + ">"
        else:
            lines = self._at(command[2:]) if command.startswith("AT") else self._obd(command)
            text = out + "".join(line + "\r" for line in lines) + "\r>"
        if self.linefeeds:
            text = text.replace("\r", "\r\n")
        return text.encode("ascii")

    # -- AT commands ---------------------------------------------------------------------------

    def _at(self, cmd: str) -> list[str]:
        if cmd in ("Z", "WS"):  # full reset / warm start: both print the banner
            self._defaults()
            return ["", "", VERSION]
        if cmd == "D":
            self._defaults()
            return ["OK"]
        if cmd == "I":
            return [VERSION]
        if cmd == "@1":
            return [DESCRIPTION]
        flags = {"E": "echo", "L": "linefeeds", "S": "spaces", "H": "headers"}
        if len(cmd) == 2 and cmd[0] in flags and cmd[1] in "01":
            setattr(self, flags[cmd[0]], cmd[1] == "1")
            return ["OK"]
        if cmd == "RV":
            return [f"{self.ecu.vehicle.state().voltage:.1f}V"]
        if cmd == "DP":
            return [self._describe_protocol()]
        if cmd == "DPN":
            number = self.active if self.active is not None else self.protocol
            return [("A" if self.auto else "") + f"{number:X}"]
        if cmd[:2] in ("SP", "TP"):
            return self._set_protocol(cmd[2:], save=cmd[:2] == "SP")
        if _ACCEPTED.match(cmd):
            if cmd.startswith("SH"):
                self.header = cmd[2:]
            return ["OK"]
        return ["?"]

    def _set_protocol(self, arg: str, save: bool) -> list[str]:
        auto = arg.startswith("A") and len(arg) == 2
        digit = arg[1:] if auto else arg
        if len(digit) != 1 or digit not in "0123456789ABC":
            return ["?"]
        number = int(digit, 16)
        self.protocol, self.auto, self.active = number, auto or number == 0, None
        if save:
            self.saved_protocol, self.saved_auto = self.protocol, self.auto
        return ["OK"]

    def _describe_protocol(self) -> str:
        number = self.active if self.active is not None else self.protocol
        name = PROTOCOLS.get(number, "")
        if self.auto:
            return f"AUTO, {name}" if name else "AUTO"
        return name

    # -- OBD requests --------------------------------------------------------------------------

    def _obd(self, cmd: str) -> list[str]:
        if not _HEX.match(cmd) or len(cmd) < 2:
            return ["?"]
        if len(cmd) % 2:
            cmd = cmd[:-1]  # the "how many responses to wait for" digit
        if len(cmd) > 14:
            return ["?"]  # more than a single CAN frame's 7 data bytes
        self.requests += 1
        lines: list[str] = []
        state = self.ecu.vehicle.state()
        ecu_awake = state.ignition
        if self.active is None:
            if self.auto:
                lines.append("SEARCHING...")
                if not ecu_awake:
                    return [*lines, "UNABLE TO CONNECT"]
                self.active = self.bus
            elif self.protocol in INIT_PROTOCOLS:
                if not (ecu_awake and self.protocol == self.bus):
                    return ["BUS INIT: ...ERROR"]
                lines.append("BUS INIT: ...OK")
                self.active = self.protocol
            else:
                self.active = self.protocol
        protocol = self.active
        if protocol != self.bus:
            # CAN frames nobody acknowledges (no CAN bus, or one at another bit rate) are bus
            # errors; a 29-bit request on an 11-bit 500k bus is acknowledged but not answered.
            can_error = protocol in CAN_PROTOCOLS and not (protocol == 7 and self.bus == 6)
            return [*lines, "CAN ERROR" if can_error else "NO DATA"]
        if not ecu_awake or (protocol in CAN_PROTOCOLS and self.header
                             and self.header not in _FUNCTIONAL):
            return [*lines, "NO DATA"]
        messages = self.ecu.answer(bytes.fromhex(cmd), can=protocol in CAN_PROTOCOLS)
        if not messages:
            return [*lines, "NO DATA"]
        for data in messages:
            lines += self._can_lines(data) if protocol in CAN_PROTOCOLS else [self._iso_line(data)]
        return lines

    def _hex(self, data: bytes | list[int]) -> str:
        return (" " if self.spaces else "").join(f"{b:02X}" for b in data)

    def _can_lines(self, data: bytes) -> list[str]:
        """One ISO 15765-2 message from ECU 7E8: single frame, or first + consecutive frames."""
        sep = " " if self.spaces else ""
        if len(data) <= 7:
            if not self.headers:
                return [self._hex(data)]
            frame = bytes([len(data)]) + data
            return ["7E8" + sep + self._hex(frame.ljust(8, b"\x00"))]
        chunks = [data[:6]] + [data[i:i + 7] for i in range(6, len(data), 7)]
        if self.headers:
            first = bytes([0x10 | len(data) >> 8, len(data) & 0xFF]) + chunks[0]
            frames = [first] + [bytes([0x20 | (i & 0xF)]) + c for i, c in enumerate(chunks) if i]
            return ["7E8" + sep + self._hex(f.ljust(8, b"\x00")) for f in frames]
        # Headers off, the chip prints the length, then each frame's data numbered 0-F.
        return [f"{len(data):03X}"] + [
            f"{i & 0xF:X}:" + sep + self._hex(c.ljust(7, b"\x00") if i else c)
            for i, c in enumerate(chunks)]

    def _iso_line(self, data: bytes) -> str:
        if not self.headers:
            return self._hex(data)
        frame = bytes([0x48, 0x6B, 0x10]) + data  # priority, to the tester, from ECU 10
        return self._hex(frame + bytes([sum(frame) & 0xFF]))

    def describe(self) -> str:
        name = self._describe_protocol() or "no protocol"
        return f"{self.requests} OBD requests, protocol {name}"


class Elm327Device(SimDevice):
    """An ELM327 adapter in the van's OBD socket, on a pseudo-terminal.

    Settings: `link` (a path to make a symlink to the port at, or null),
    `bus` (the van's OBD protocol: 6, CAN 11/500, the default; or 3, ISO
    9141-2), `linefeeds` (the chip's LF default, set on a real one by pin 7),
    `baud` (the serial line's speed: the answer comes only after the request
    and the answer would have taken on a line that fast, 10 bits a byte; a
    pseudo-terminal by itself is as fast as memory; default: no wait).
    """

    kind: ClassVar[str] = "elm327"
    actions: ClassVar[tuple[str, ...]] = ()
    settings: ClassVar[tuple[str, ...]] = ("id", "kind", "link", "bus", "linefeeds", "baud")

    def __init__(self, sim: Simulation, spec: Mapping[str, Any], env: Any) -> None:
        super().__init__(sim, spec, env)
        if not isinstance(env, Vehicle):
            raise ScenarioError(f"device {self.id!r} (elm327) plugs into a car: "
                                "the site needs world: {kind: car}")
        bus = spec.get("bus", 6)
        if bus not in BUSES:
            raise ScenarioError(f"device {self.id!r} (elm327): bus {bus!r} is not one the "
                                "simulated ECU speaks: 6 (CAN 11/500) or 3 (ISO 9141-2)")
        self.adapter = Elm327(EngineEcu(env), int(bus), bool(spec.get("linefeeds", False)))
        baud = spec.get("baud")
        if baud is not None and (not isinstance(baud, int) or baud <= 0):
            raise ScenarioError(f"device {self.id!r} (elm327): baud is a line speed such as "
                                f"38400, not {baud!r}")
        self.byte_time = 10.0 / baud if baud else 0.0
        self.port: PseudoTerminal | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, net: Network | None) -> None:
        link = self.spec.get("link")
        self.port = PseudoTerminal(str(link) if link else None)
        self._thread = threading.Thread(target=self._serve, name=f"elm327-{self.id}",
                                        daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        port = self.port
        assert port is not None
        pending = b""
        while not self._stop.is_set():
            pending += port.read(0.1)
            while b"\r" in pending:
                line, pending = pending.split(b"\r", 1)
                try:
                    answer = self.adapter.handle(line)
                except Exception:  # a bug here must not silence the port for the whole run
                    log.exception("%s: failed to answer %r", self.id, line)
                    answer = b"?\r\r>"
                if self.byte_time:
                    # The request's bytes and the answer's, on a line this fast (real
                    # time: the line is a real thing the reader waits for).
                    time.sleep((len(line) + 1 + len(answer)) * self.byte_time)
                port.write(answer, wait=1.0)
            pending = pending[-256:]  # no CR in sight: the chip's buffer is not endless either

    def gateway_devices(self) -> list[dict[str, Any]]:
        return [{"id": self.id, "profile": "elm327", "source": self.id}]

    def gateway_sources(self) -> list[dict[str, Any]]:
        port = self.spec.get("link") or self.endpoint()
        return [{"name": self.id, "type": "elm327", "port": str(port)}] if port else []

    def endpoint(self) -> str | None:
        return self.port.path if self.port is not None else None

    def describe(self) -> str:
        where = self.endpoint() or "not started"
        return f"ELM327 on {where}, {self.adapter.describe()}"

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        if self.port is not None:
            self.port.close()
