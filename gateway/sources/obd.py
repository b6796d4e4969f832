"""Reading what an ELM327 prints: its answer to one request, as the messages each ECU
sent, and the trouble codes a mode 03 message holds.

The adapter is set to print headers (ATH1) and spaces (ATS1), so each line says which
ECU sent it and where its bytes are:

- CAN (protocols 6-C): `7E8 06 41 0C 1A F8 00 00 00` (11-bit) or `18 DA F1 10 ...`
  (29-bit): the header, then the ISO 15765-2 frame: a single frame (PCI 0N, N data
  bytes), or a first frame (1N NN, 12-bit length) and consecutive frames (2N)
  that are put together per ECU;
- the older buses (protocols 1-5: J1850, ISO 9141-2, KWP2000): `48 6B 10 41 0C 1A F8
  C4`: three header bytes (the third is the ECU's address), the data, a checksum.

Lines the chip adds (`SEARCHING...`, `BUS INIT: ...OK`) are skipped; a line that is
one of its error words is returned as the answer's error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: the chip's words for "no answer", by what they mean for the poller
ERRORS = {
    "NO DATA": "no_data",              # nobody answered this request (or not supported)
    "UNABLE TO CONNECT": "no_ecu",     # the protocol search found no ECU: ignition off
    "BUS INIT: ...ERROR": "no_ecu",    # a K-line bus did not wake: ignition off
    "BUS INIT: ERROR": "no_ecu",
    "CAN ERROR": "bus_error",          # nothing acknowledged the frames: wrong bus, unplugged
    "BUS ERROR": "bus_error",
    "BUS BUSY": "bus_error",
    "FB ERROR": "bus_error",
    "DATA ERROR": "bus_error",
    "<DATA ERROR": "bus_error",
    "<RX ERROR": "bus_error",
    "BUFFER FULL": "bus_error",
    "STOPPED": "stopped",              # the chip was interrupted (a byte arrived mid-request)
    "?": "not_understood",
    "LV RESET": "reset",               # the adapter reset itself (supply dipped)
    "ACT ALERT": "reset",
}
_SKIPPED = ("SEARCHING", "BUS INIT")  # what is left of them once the errors are read

#: protocols (ATDPN's number) whose headers are 29 bits
CAN_29 = {7, 9, 10}
CAN = {6, 7, 8, 9, 10, 11, 12}


@dataclass
class Answer:
    """What the ECUs said to one request: their messages' bytes by ECU (header text), or
    the chip's error word's meaning."""

    messages: dict[str, bytes] = field(default_factory=dict)
    error: str = ""
    #: lines that were neither data nor a word the chip says (counted by the poller)
    unreadable: int = 0


def read_answer(text: str, protocol: int) -> Answer:
    """The answer in `text` (everything before the prompt) under `protocol` (ATDPN)."""
    out = Answer()
    line = text.strip()
    if protocol in CAN and protocol not in CAN_29 and "\r" not in line and "\n" not in line:
        # The usual answer, one 11-bit single frame: `7E8 04 41 0C 1A F8 00 00 00`.
        try:
            frame = bytes.fromhex(line[4:])
        except ValueError:
            frame = b""
        size = frame[0] if frame else 0
        if line[3:4] == " " and 0 < size < len(frame):
            out.messages[line[:3]] = frame[1:1 + size]
            return out
    frames: dict[str, list[bytes]] = {}
    for raw in text.replace("\n", "\r").split("\r"):
        line = raw.strip()
        error = ERRORS.get(line)
        if error is not None:
            out.error = out.error or error
            continue
        if not line or line.startswith(_SKIPPED):
            continue
        parts = line.split()
        try:
            if protocol in CAN:
                size = 4 if protocol in CAN_29 else 1
                header = "".join(parts[:size])
                frame = bytes.fromhex("".join(parts[size:]))
            else:
                whole = bytes.fromhex("".join(parts))
                header, frame = f"{whole[2]:02X}", whole[3:-1] if len(whole) > 4 else b""
        except (ValueError, IndexError):
            out.unreadable += 1
            continue
        if not frame:
            out.unreadable += 1
            continue
        frames.setdefault(header, []).append(frame)
    for header, got in frames.items():
        data = _join(got) if protocol in CAN else b"".join(_iso_parts(got))
        if data is None:
            out.unreadable += 1
        else:
            out.messages[header] = data
    if out.messages:
        out.error = ""  # one ECU's silence among others' answers is no error
    return out


def _join(frames: list[bytes]) -> bytes | None:
    """One ISO 15765-2 message from its CAN frames (a single frame, or first and
    consecutive ones in order); None when they do not make one."""
    first = frames[0]
    kind = first[0] >> 4
    if kind == 0:
        size = first[0] & 0x0F
        return first[1:1 + size] if 0 < size <= len(first) - 1 else None
    if kind != 1 or len(first) < 2:
        return None
    size = (first[0] & 0x0F) << 8 | first[1]
    data = bytearray(first[2:])
    for n, frame in enumerate(frames[1:], 1):
        if frame[0] >> 4 != 2 or frame[0] & 0x0F != n & 0x0F:
            return None
        data += frame[1:]
    return bytes(data[:size]) if len(data) >= size else None


def _iso_parts(frames: list[bytes]) -> list[bytes]:
    """The older buses answer a long request in several messages, each repeating the
    service byte (and, for mode 09, a message number): the first whole, the rest
    without their service byte, so mode 03's codes line up."""
    if len(frames) == 1:
        return frames
    return [frames[0], *(f[1:] for f in frames[1:])]


def trouble_codes(data: bytes, can: bool) -> list[str]:
    """The codes of a mode 03 (or 07) answer `data` (its first byte 0x43): on CAN a
    count byte, then two bytes a code; elsewhere two bytes a code, 0000 padding."""
    body = data[2:] if can else data[1:]
    codes = []
    for i in range(0, len(body) - 1, 2):
        a, b = body[i], body[i + 1]
        if a == 0 and b == 0:
            continue
        codes.append("PCBU"[a >> 6] + f"{(a >> 4) & 0x3:X}{a & 0x0F:X}{b:02X}")
    return codes


def supported(data: bytes, base: int) -> set[int]:
    """The PIDs a "which PIDs" answer (41 00 / 41 20 ...: four bitmap bytes after the
    PID) says the ECU supports, `base` + 1 to `base` + 0x20."""
    bitmap = int.from_bytes(data[2:6], "big") if len(data) >= 6 else 0
    return {base + i + 1 for i in range(32) if bitmap & (1 << (31 - i))}
