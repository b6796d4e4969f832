"""What the van's engine ECU answers to OBD-II requests (SAE J1979 / ISO 15031-5).

`EngineEcu.answer()` takes a request's bytes (service, then PIDs) and gives the
data of each response message, or no message at all: an ECU stays silent for a
service or PID it does not support (the ELM327 then prints NO DATA). The
adapter adds what its protocol shows (CAN header and PCI byte, ISO checksum).

Where CAN and the older protocols differ, J1979 says how, and so does this:
a CAN ECU puts the number of codes after 43 and sends all of them in one
(possibly multi-frame) message, `43 01 01 33` for P0133; ISO 9141-2, KWP and
J1850 ECUs send three codes per message with no count, padded with 00 00:
`43 01 33 00 00 00 00`. The VIN (service 09 PID 02) is one 20-byte message on
CAN and five numbered 7-byte messages elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable

from firmware_sim.car.vehicle import CarState, Vehicle


def _byte(x: float) -> bytes:
    return bytes([min(255, max(0, round(x)))])


def _word(x: float) -> bytes:
    return min(65535, max(0, round(x))).to_bytes(2, "big")


def _percent(x: float) -> bytes:
    return _byte(x * 255 / 100)


def _monitor_status(s: CarState) -> bytes:
    # A: lamp and code count. B: misfire, fuel and component monitors supported
    # (spark ignition). C: catalyst, evaporative system, O2 sensor and its heater
    # supported. D: the same monitors incomplete, as they are for a while after
    # codes are cleared, until the drive cycles have run them again.
    supported = 0x01 | 0x04 | 0x20 | 0x40
    incomplete = supported if s.since_clear_km < 20 else 0
    return bytes([(0x80 if s.mil else 0) | min(len(s.dtcs), 0x7F), 0x07, supported, incomplete])


# Service 01 PIDs this ECU supports, with how each encodes its value (J1979 Appendix B).
PIDS: dict[int, Callable[[CarState], bytes]] = {
    0x01: _monitor_status,
    0x04: lambda s: _percent(s.load),
    0x05: lambda s: _byte(s.coolant + 40),
    0x0C: lambda s: _word(s.rpm * 4),
    0x0D: lambda s: _byte(s.speed_kmh),
    0x0F: lambda s: _byte(s.intake + 40),
    0x11: lambda s: _percent(s.throttle),
    0x1F: lambda s: _word(s.run_time),
    0x2F: lambda s: _percent(s.fuel),
    0x31: lambda s: _word(s.since_clear_km),
    0x33: lambda s: _byte(101),  # barometric pressure, kPa: low ground near the sea
    0x42: lambda s: _word(s.voltage * 1000),
    0x46: lambda s: _byte(s.ambient + 40),
}
SERVICE_09_PIDS = {0x02}  # the VIN


def supported_bitmap(pids: set[int], base: int, more: bool) -> bytes:
    """The 4-byte answer to PID `base` (00, 20, 40...): bit 31 is PID base+1, bit 0 base+32."""
    bits = 0
    for pid in pids:
        if base < pid <= base + 32:
            bits |= 1 << (32 - (pid - base))
    if more:
        bits |= 1  # PID base+32, itself the next range's bitmap
    return bits.to_bytes(4, "big")


def encode_dtc(code: str) -> bytes:
    """P0133 -> 01 33: two bits for the letter, two for the first digit, twelve for the rest."""
    letter = "PCBU".index(code[0])
    return ((letter << 14) | (int(code[1]) << 12) | int(code[2:], 16)).to_bytes(2, "big")


class EngineEcu:
    """The engine control module's diagnostic services: 01, 03, 04, 07 and 09."""

    def __init__(self, vehicle: Vehicle) -> None:
        self.vehicle = vehicle

    def answer(self, request: bytes, can: bool) -> list[bytes]:
        """The data of each response message (service byte + 0x40 first); [] for silence."""
        if not request:
            return []
        service, args = request[0], request[1:]
        s = self.vehicle.state()
        if service == 0x01:
            # CAN allows up to six PIDs in one request, answered in one message.
            wanted = args[:6] if can else args[:1]
            values = [(pid, self._pid(pid, s)) for pid in wanted]
            data = b"".join(bytes([pid]) + value for pid, value in values if value)
            return [b"\x41" + data] if data else []
        if service in (0x03, 0x07):
            # Pending codes (07) need two trips to become stored ones; ours are set stored.
            codes = list(s.dtcs) if service == 0x03 else []
            return self._codes(0x40 | service, codes, can)
        if service == 0x04:
            self.vehicle.clear_dtcs()
            return [b"\x44"]
        if service == 0x09 and args:
            return self._vehicle_info(args[0], s, can)
        return []

    @staticmethod
    def _pid(pid: int, s: CarState) -> bytes:
        if pid % 0x20 == 0:  # a "which PIDs do you support" request: answered while it leads on
            if pid and not any(p > pid for p in PIDS):
                return b""
            return supported_bitmap(set(PIDS), pid, more=any(p > pid + 0x20 for p in PIDS))
        encode = PIDS.get(pid)
        return encode(s) if encode is not None else b""

    @staticmethod
    def _codes(reply: int, codes: list[str], can: bool) -> list[bytes]:
        encoded = [encode_dtc(c) for c in codes]
        if can:
            return [bytes([reply, len(encoded)]) + b"".join(encoded)]
        if not encoded:
            encoded = [b"\x00\x00"] * 3  # "no codes" is still one message, of zeros
        encoded += [b"\x00\x00"] * (-len(encoded) % 3)
        return [bytes([reply]) + b"".join(encoded[i:i + 3]) for i in range(0, len(encoded), 3)]

    @staticmethod
    def _vehicle_info(pid: int, s: CarState, can: bool) -> list[bytes]:
        if pid == 0x00:
            return [b"\x49\x00" + supported_bitmap(SERVICE_09_PIDS, 0, more=False)]
        if pid != 0x02:
            return []
        vin = s.vin.encode("ascii")[:17].rjust(17, b"0")
        if can:
            return [b"\x49\x02\x01" + vin]
        padded = b"\x00\x00\x00" + vin  # five messages of four bytes, numbered 1 to 5
        return [b"\x49\x02" + bytes([i + 1]) + padded[4 * i:4 * i + 4] for i in range(5)]
