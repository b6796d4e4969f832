"""An ELM327 OBD-II adapter: the car's engine data, polled.

The adapter answers requests; the source asks. On a port (opened, lost and opened
again as any serial source: gateway.sources.port) a session:

1. sets the chip up: ATZ (reset), ATE0 (no echo), ATL0 (no line feeds), ATS1 and
   ATH1 (spaces and headers, so each answer says which ECU sent it), ATSP (the
   protocol: 0 searches). A device that does not answer OK is not an ELM327: said
   in status, and tried again later;
2. looks for the car: 0100 (which PIDs do you support?) until an ECU answers. No
   answer (UNABLE TO CONNECT, NO DATA, BUS INIT: ...ERROR, CAN ERROR) means the
   ignition is off: `vehicle.ignition` 0, and another look every `idle_every`;
3. asks 0120, 0140 ... for the rest of the supported PIDs, says once which
   configured PIDs the car does not have (they are not polled), and then polls
   each configured PID at its own interval, the trouble codes (03) and the
   battery (ATRV) at theirs, until three requests in a row go unanswered: the
   ignition went off, and it is back to 2.

What the ECUs answer is handed on as it is, per ECU: `<source>/<ecu>/01<PID>` with
the data bytes as JSON {"A": .., "B": .., "AB": A*256+B ...}; the elm327 profile
turns those into readings by the SAE J1979 formulas. Trouble codes go as
`<source>/<ecu>/03` {"count": n, "codes": {"P0133": 1}}, a code that has gone as 0
once; the ignition as `<source>/ignition` 1/0; the battery as `<source>/battery`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import serial

from gateway.clock import Clock
from gateway.health.stats import Stats
from gateway.model import RawMessage
from gateway.sources.base import Submit
from gateway.sources.elm327_config import PID_NAMES, Elm327SourceConfig, pid_number
from gateway.sources.obd import CAN, Answer, read_answer, supported, trouble_codes
from gateway.sources.port import Opener, PortGone, PortSource

log = logging.getLogger("gateway.elm327")

#: unanswered requests in a row that mean the ECU has gone quiet (ignition off)
SILENT_IN_A_ROW = 3
#: "which PIDs" requests: 0100 answers for 01-20, 0120 for 21-40 ...
_RANGES = (0x00, 0x20, 0x40, 0x60, 0x80, 0xA0, 0xC0)
_NAMES = {v: k for k, v in PID_NAMES.items()}


class Elm327Source(PortSource):
    kind = "obd"
    what = "ELM327 adapter"

    def __init__(self, config: Elm327SourceConfig, clock: Clock, stats: Stats, submit: Submit,
                 opener: Opener = serial.serial_for_url) -> None:
        super().__init__(config, clock, stats, submit, opener)
        self.config = config
        self.pids = {pid_number(str(k)) or 0: float(v) for k, v in config.pids.items()}
        self.protocol = 0  # the one in use (ATDPN), once the car answered
        self.supported: set[int] = set()
        self.ignition: bool | None = None
        self.codes: dict[str, set[str]] = {}  # the trouble codes last read, by ECU
        self._port: Any = None
        self._said_unsupported: set[int] = set()
        self.requests = 0
        self._counts: dict[str, int] = {}
        self._counted = 0.0

    def status(self) -> dict[str, Any]:
        return {**super().status(), "type": "elm327", "ignition": self.ignition,
                "protocol": self.protocol,
                "supported_pids": len(self.supported), "requests": self.requests,
                "not_supported": sorted(f"{p:02X}" for p in self._said_unsupported)}

    # -- a session on an open port ------------------------------------------------------------

    def session(self, port: Any) -> None:
        self._port = port
        self._set_up()
        battery_due = self.clock.monotonic()
        while not self.stopping.is_set():
            if not self._find_car():
                self._ignition(False)
                # The battery answers at the socket with the ignition off too: a van
                # left with its lights on shows here.
                if self.config.battery_every > 0 and self.clock.monotonic() >= battery_due:
                    self._battery()
                    battery_due = self.clock.monotonic() + float(self.config.battery_every)
                self.stopping.wait(float(self.config.idle_every))
                continue
            self._ignition(True)
            self._poll()

    def _set_up(self) -> None:
        port = self._port
        port.write(b"\r")  # ends whatever half a command the chip holds
        self._drain()
        banner = self._ask("ATZ")
        if "ELM" not in banner.upper():
            # An answer to someone else's last request was still on its way (the gateway
            # restarted mid-request, say): what is left is this reset's banner.
            self._drain()
        for command in ("ATE0", "ATL0", "ATS1", "ATH1", f"ATSP{self.config.protocol}"):
            answer = self._ask(command)
            if "OK" not in answer:
                raise PortGone(f"the device on {self.port_name} does not answer like an "
                               f"ELM327 ({command} gave {answer.strip()[:40]!r}; reset said "
                               f"{banner.strip()[:40]!r})")
        lines = banner.strip().splitlines()
        log.info("ELM327 adapter %s: %s", self.name, lines[-1].strip() if lines else "no banner")

    def _drain(self) -> None:
        """Read and drop what the adapter is still sending, until it has been quiet for a
        read wait (0.2 s), or for at most two seconds."""
        port = self._port
        end = self.clock.monotonic() + 2.0
        while self.clock.monotonic() < end and port.read(max(port.in_waiting, 1)):
            pass

    def _find_car(self) -> bool:
        """Whether an ECU answered 0100; learns the protocol and the supported PIDs."""
        self.requests += 1
        text = self._ask("0100")
        first = read_answer(text, self.protocol or 6)
        if first.error and not first.messages:
            self._count(first.error)
            return False
        # Which protocol the search found says how to read the answer's lines.
        number = self._ask("ATDPN").strip().lstrip("A")
        try:
            self.protocol = int(number[-1:], 16)
        except ValueError:
            self.protocol = 6
        found = read_answer(text, self.protocol)
        self._count("answered" if found.messages else "unreadable")
        if not found.messages:
            return False
        self.supported = set()
        for base in _RANGES:
            if base and base not in self.supported:
                break
            reply = found if base == 0 else self._request(f"01{base:02X}", base)
            for data in reply.messages.values():
                self.supported |= supported(data, base)
        for pid in self.pids:
            if pid not in self.supported and pid not in self._said_unsupported:
                self._said_unsupported.add(pid)
                named = f" ({_NAMES[pid]})" if pid in _NAMES else ""
                log.warning("ELM327 adapter %s: the car does not support PID %02X%s: not "
                            "polled", self.name, pid, named)
        return True

    def _poll(self) -> None:
        """Each PID at its interval, the codes and the battery at theirs, until the ECU
        goes quiet, the port fails or the source stops."""
        now = self.clock.monotonic()
        due: dict[Any, float] = {pid: now for pid in self.pids if pid in self.supported}
        if self.config.trouble_codes_every > 0:
            due["codes"] = now
        if self.config.battery_every > 0:
            due["battery"] = now
        silent = 0
        while due and not self.stopping.is_set():
            job = min(due, key=due.__getitem__) if len(due) > 1 else next(iter(due))
            now = self.clock.monotonic()
            if due[job] > now:
                if self.stopping.wait(due[job] - now):
                    return
                now = self.clock.monotonic()
            due[job] = now + self._every(job)
            if job == "battery":
                self._battery()
                continue
            answer = self._request("03", 0) if job == "codes" else \
                self._request(f"01{job:02X}", job)
            if answer.messages:
                silent = 0
                if job == "codes":
                    self._codes(answer)
                continue
            silent += 1
            if answer.error == "no_ecu" or silent >= SILENT_IN_A_ROW:
                return  # the ignition went off: look for the car again
        if not due:
            self.stopping.wait(float(self.config.idle_every))

    def _every(self, job: Any) -> float:
        if job == "codes":
            return float(self.config.trouble_codes_every)
        if job == "battery":
            return float(self.config.battery_every)
        return self.pids[job]

    # -- requests and what comes of them -----------------------------------------------------

    def _ask(self, command: str) -> str:
        """Send one command; the chip's answer up to its prompt."""
        port = self._port
        port.write(command.encode("ascii") + b"\r")
        # What has arrived, in one read, rather than pyserial's read_until, which reads
        # a byte at a time: a 30-byte answer is then one system call, not thirty.
        raw = b""
        deadline = None
        while not raw.endswith(b">"):
            chunk = port.read(port.in_waiting or 1)
            if chunk:
                raw += chunk
                continue
            # Nothing for a whole read wait (0.2 s): the adapter is slow, or gone.
            now = self.clock.monotonic()
            if deadline is None:
                deadline = now + float(self.config.answer_timeout)
            elif now > deadline:
                raise PortGone(f"the adapter on {self.port_name} did not answer {command} "
                               f"within {float(self.config.answer_timeout):g} s")
        return raw[:-1].decode("ascii", "replace")

    def _request(self, command: str, pid: int) -> Answer:
        """An OBD request; a PID's answers are handed on, one message per ECU."""
        self.requests += 1
        answer = read_answer(self._ask(command), self.protocol or 6)
        self._count("answered" if answer.messages else (answer.error or "unreadable"))
        if answer.error == "reset":
            raise PortGone(f"the adapter on {self.port_name} reset itself")
        if command.startswith("01") and pid % 0x20:
            received = self.clock.now()
            for ecu, data in answer.messages.items():
                if len(data) >= 2 and data[0] == 0x41 and data[1] == pid:
                    self._hand_on(f"{ecu}/01{pid:02X}", _bytes_json(data[2:]), received)
        return answer

    def _count(self, result: str) -> None:
        """Count a request's result; added to the gateway's figures about once a second
        (taking the figures' lock for every request cost a tenth of one)."""
        self._counts[result] = self._counts.get(result, 0) + 1
        now = self.clock.monotonic()
        if now - self._counted >= 1.0 or result != "answered":
            self._counted = now
            counts, self._counts = self._counts, {}
            for what, n in counts.items():
                self.stats.inc("gateway.obd_requests", n, source=self.name, result=what)

    def _codes(self, answer: Answer) -> None:
        received = self.clock.now()
        can = self.protocol in CAN
        for ecu, data in answer.messages.items():
            if not data or data[0] != 0x43:
                continue
            now = set(trouble_codes(data, can))
            before = self.codes.get(ecu, set())
            self.codes[ecu] = now
            for code in sorted(now - before):
                log.warning("ELM327 adapter %s: ECU %s reports trouble code %s", self.name,
                            ecu, code)
            for code in sorted(before - now):
                log.info("ELM327 adapter %s: ECU %s no longer reports trouble code %s",
                         self.name, ecu, code)
            body = {"count": len(now),
                    "codes": {**{c: 0 for c in before - now}, **{c: 1 for c in now}}}
            self._hand_on(f"{ecu}/03", json.dumps(body).encode(), received)

    def _battery(self) -> None:
        answer = self._ask("ATRV").strip()
        if answer.upper().endswith("V"):
            self._hand_on("battery", answer[:-1].encode("ascii", "replace"), self.clock.now())

    def _ignition(self, on: bool) -> None:
        if on != self.ignition:
            log.info("ELM327 adapter %s: %s", self.name,
                     "an ECU answers (ignition on)" if on else "no ECU answers (ignition off)")
        self.ignition = on
        self._hand_on("ignition", b"1" if on else b"0", self.clock.now())

    def _hand_on(self, what: str, payload: bytes, received: float) -> None:
        self.submit(RawMessage(f"{self.name}/{what}", payload, received, kind="obd"), None)


def _bytes_json(data: bytes) -> bytes:
    """A PID's data bytes as the profile's formulas name them: A, B, C, D, and the 16-bit
    words AB and CD (JSON written out here: json.dumps took a tenth of a request)."""
    parts = [f'"{"ABCD"[i]}":{b}' for i, b in enumerate(data[:4])]
    if len(data) >= 2:
        parts.append(f'"AB":{data[0] << 8 | data[1]}')
    if len(data) >= 4:
        parts.append(f'"CD":{data[2] << 8 | data[3]}')
    return ("{" + ",".join(parts) + "}").encode()
