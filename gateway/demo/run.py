"""`gateway demo`: broker + simulated village hall + gateway + live view, stopped by Ctrl-C.

The gateway runs exactly as `gateway run` would, on a config written to the
demo's folder (demo.yaml: the site's devices, a rotating JSON-lines file sink,
and VictoriaMetrics/InfluxDB too with --influx). The simulated devices are
firmware_sim's, publishing over real MQTT connections.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from gateway.config.load import load_config
from gateway.demo.broker import EmbeddedBroker, free_port, port_free, wait_port
from gateway.demo.inbox import Inbox
from gateway.demo.view import render

log = logging.getLogger("gateway.demo")

FRAME_RULE = "-" * 72  # starts each screen when the output is not a terminal


@dataclass
class DemoOptions:
    broker: tuple[str, int] | None = None  # an existing broker; else an embedded one
    protocol: str = "5"  # of the existing broker
    scenario: str = "demo-day"
    speed: float = 60.0
    seed: int = 0
    data_dir: Path = Path("data/demo")
    duration: float | None = None  # stop by itself after this many seconds
    refresh: float | None = None  # seconds between frames (default 1 on a terminal, else 5)
    influx: str | None = None


def demo_alerts(inbox: str, speed: float, devices: list[str]) -> dict[str, Any]:
    """The committee's alerts for the demo: one member on the demo's own channel, the
    monitors the hall fears, their durations in simulated time (the gateway's clock is
    real: at x60 a simulated ten minutes is ten seconds)."""

    def sim(seconds: float, least: float = 0.5) -> float:
        return round(max(least, seconds / speed), 2)

    plugs = [d for d in devices if d in ("defib-socket", "kitchen-urn", "stage-lights")]
    return {
        "people": [{"name": "committee", "channels": [inbox]}],
        "monitors": [
            {"name": "defib-power", "type": "state", "metric": "plug.power",
             "devices": ["defib-socket"], "below": 1, "duration": sim(600),
             "safety_critical": True,
             "message": "{{#is_alert}}The defibrillator socket has had no power for "
                        f"{{{{duration}}}} of the demo's time (x{speed:g} in the simulated "
                        "hall).{{/is_alert}}{{#is_recovery}}Power is back at the "
                        "defibrillator socket.{{/is_recovery}}"},
            {"name": "device-silent", "type": "no_data", "devices": plugs,
             # at least 10 s: the simulated devices start after the gateway does
             "timeframe": sim(1200, least=10),
             "message": "{{#is_no_data}}{{device.name}} has gone silent.{{/is_no_data}}"
                        "{{#is_recovery}}{{device.name}} is back.{{/is_recovery}}"},
            {"name": "urn-on-long", "type": "threshold", "metric": "plug.power",
             "devices": ["kitchen-urn"], "aggregation": "avg", "window": sim(3600),
             "critical": 1500, "critical_recovery": 200,
             "message": "{{#is_alert}}The urn has drawn {{value}} W on average for an hour."
                        "{{/is_alert}}{{#is_recovery}}The urn is off.{{/is_recovery}}"},
        ],
        "alerting": {"board": False, "retry_min": 0.5, "retry_max": 2},
    }


def van_alerts(inbox: str, speed: float, engine: str) -> dict[str, Any]:
    """The van's alert for the demo: the check-engine lamp, told to the depot."""
    return {
        "people": [{"name": "depot", "channels": [inbox]}],
        "monitors": [
            {"name": "check-engine", "type": "state", "metric": "vehicle.trouble_codes",
             "devices": [engine], "above": 0, "duration": round(max(0.5, 60 / speed), 2),
             "message": "{{#is_alert}}The van's engine reports a trouble code: book it in."
                        "{{/is_alert}}{{#is_recovery}}The trouble code has been cleared."
                        "{{/is_recovery}}"}],
        "alerting": {"board": False, "retry_min": 0.5, "retry_max": 2},
    }


def demo_config(site: Any, devices: list[dict[str, Any]], host: str, port: int, protocol: str,
                http_port: int, influx: str | None, readings: Path,
                alerts: dict[str, Any] | None = None,
                sources: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    sinks: list[dict[str, Any]] = [
        # An absolute path: a relative one would be inside the store's folder (data_dir).
        {"name": "local", "type": "file", "path": str(readings), "max_bytes": 5_000_000,
         "keep": 3},
    ]
    if influx:
        sinks.append({"name": "influx", "type": "influx", "url": influx})
    from firmware_sim.site import gateway_config

    # Simulated time runs fast: look for a port, or a car that has woken, often.
    quick = {"serial": {"retry_min": 0.2, "retry_max": 1},
             "elm327": {"retry_min": 0.2, "retry_max": 1, "idle_every": 0.5}}
    config = gateway_config(site, devices, [{**s, **quick.get(s["type"], {})}
                                            for s in sources or ()])
    engine = next((d["id"] for d in devices if d.get("profile") == "elm327"), None)
    if engine is not None:
        # A vehicle: its trips tagged, and the office's copy sent only while the van is
        # parked (on the depot's Wi-Fi, not paying for mobile data).
        config["trips"] = {"ignition": engine}
        sinks.append({"name": "office", "type": "file", "path": str(readings.parent /
                                                                    "office.jsonl"),
                      "forward_when": {"metric": "vehicle.ignition", "device": engine,
                                       "equals": 0}})
    gw = config["gateway"]
    # Simulated time runs `--speed` times faster than the wall clock, so the devices'
    # own clocks (Tasmota Time, Shelly ts) run far ahead of the gateway's: stamp
    # readings on receipt rather than reject every device's clock as wrong.
    gw.update({"data_dir": "store", "http": {"port": http_port},
               "device_time": {"enabled": False}})
    config["mqtt"] = {"host": host, "port": port, "protocol": protocol,
                      "client_id": f"gateway-demo-{gw.get('name', 'hall')}"}
    config["sinks"] = sinks
    config.update(alerts or {})
    return config


class Demo:
    """Owns the parts of one demo run."""

    def __init__(self, opts: DemoOptions, out: IO[str]) -> None:
        from firmware_sim.network import BrokerNetwork
        from firmware_sim.runner import ScenarioRun
        from firmware_sim.scenario import load_scenario

        self.opts = opts
        self.out = out
        self.tty = out.isatty()
        self.refresh = opts.refresh or (1.0 if self.tty else 5.0)
        self.events: collections.deque[str] = collections.deque(maxlen=4)
        self.scenario = load_scenario(opts.scenario)
        self.data_dir = opts.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Serial devices (a van's adapter and GPS) on pseudo-terminals linked from the
        # demo's folder, so its config names them the same way every run.
        ports = {str(d["id"]): {**self.scenario.devices.get(str(d["id"]), {}),
                                "link": str(self.data_dir / "ports" / str(d["id"]))}
                 for d in self.scenario.site.devices if d.get("kind") in ("elm327", "gps")}
        if ports:
            self.scenario = dataclasses.replace(
                self.scenario, devices={**self.scenario.devices, **ports})
        self.embedded: EmbeddedBroker | None = None
        if opts.broker is None:
            port = 1883 if port_free("127.0.0.1", 1883) else free_port()
            self.host, self.port, self.protocol = "127.0.0.1", port, "3.1.1"
            self.embedded = EmbeddedBroker(self.host, port)
        else:
            (self.host, self.port), self.protocol = opts.broker, opts.protocol
        self.network = BrokerNetwork(self.host, self.port)
        self.run = ScenarioRun(self.scenario, self.network, opts.seed, None, opts.speed,
                               report=self._event)
        self.http_port = free_port()
        self.config_path = self.data_dir / "demo.yaml"
        self.inbox = Inbox("127.0.0.1", free_port(), self.data_dir / "notifications.jsonl")
        devices = self.run.gateway_devices()
        engine = next((d["id"] for d in devices if d.get("profile") == "elm327"), None)
        alerts = van_alerts(self.inbox.url, opts.speed, engine) if engine else \
            demo_alerts(self.inbox.url, opts.speed, [d["id"] for d in devices])
        config = demo_config(self.scenario.site, devices, self.host,
                             self.port, self.protocol, self.http_port, opts.influx,
                             self.data_dir / "readings.jsonl", alerts,
                             self.run.gateway_sources())
        self.config_path.write_text(
            "# Written by `gateway demo`; `gateway run --config` on it works too.\n"
            + yaml.safe_dump(config, sort_keys=False))
        self.sim_thread = threading.Thread(target=self._simulate, name="simulator", daemon=True)
        self.sim_error: BaseException | None = None

    def _event(self, ts: float, text: str) -> None:
        self.events.append(f"[{self.run.sim.local(ts).strftime('%a %H:%M')}] {text}")

    def _simulate(self) -> None:
        try:
            self.run.run()
        except Exception as exc:
            self.sim_error = exc
            log.exception("the simulator stopped")

    def header(self, gateway: Any) -> list[str]:
        sim = self.run.sim
        broker = (f"embedded broker {self.host}:{self.port} (amqtt, MQTT 3.1.1)" if self.embedded
                  else f"broker {self.host}:{self.port}")
        done = " (finished)" if not self.sim_thread.is_alive() else ""
        return [
            f"Edge gateway demo: {gateway.config.gateway.name}, scenario {self.scenario.name} "
            f"at x{self.opts.speed:g}, simulated {sim.local().strftime('%a %d %b %H:%M')}{done}",
            f"{broker}; readings -> {self.data_dir / 'readings.jsonl'}; "
            f"status http://127.0.0.1:{self.http_port}/status; Ctrl-C stops",
        ]

    def footer(self, status: dict[str, Any] | None = None) -> list[str]:
        lines = []
        alerts = (status or {}).get("alerts") or {}
        if alerts:
            open_ = alerts.get("open") or []
            lines.append("alerts: " + (", ".join(f"{a['monitor']} on {a['group']} "
                                                 f"{a['status']}" for a in open_)
                                       or "none open")
                         + f"; told the committee {self.inbox.count} time(s) -> "
                           f"{self.inbox.path}")
            lines += [f"  told: {title}: {message.strip().splitlines()[0][:90]}"
                      for _, title, message in self.inbox.last]
        lines.append(f"world: {self.run.built.world.describe()}")
        if self.sim_error is not None:
            lines.append(f"SIMULATOR STOPPED: {self.sim_error}")
        lines += [f"  {e}" for e in self.events]
        return lines

    def draw(self, text: str) -> None:
        if self.tty:
            self.out.write("\033[H\033[2J" + text + "\n")
        else:
            self.out.write(FRAME_RULE + "\n" + text + "\n")
        self.out.flush()

    async def main(self) -> int:
        from gateway.app.gateway import Gateway

        config = load_config(self.config_path)
        await self.inbox.start()
        gateway = Gateway(config, self.data_dir)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        task = asyncio.create_task(gateway.run())
        # Subscribe before the devices announce themselves: their first messages
        # are not retained.
        deadline = time.monotonic() + 15
        while not gateway.source.connected.is_set() and time.monotonic() < deadline:
            if task.done():
                break
            await asyncio.sleep(0.1)
        if not gateway.source.connected.is_set():
            self.out.write(f"gateway demo: the gateway could not connect to the broker "
                           f"{self.host}:{self.port}; see {self.data_dir / 'gateway.log'}\n")
            gateway.request_stop()
            await task
            return 1
        await asyncio.sleep(0.5)
        self.sim_thread.start()
        started = time.monotonic()
        last, last_t = (0.0, 0.0), time.monotonic()
        try:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), self.refresh)
                except TimeoutError:
                    pass
                status = gateway.status()
                ing = status["ingest"]
                now_t = time.monotonic()
                span = max(now_t - last_t, 1e-6)
                rates = {"messages": (ing["received"] - last[0]) / span,
                         "readings": (ing["stored"] - last[1]) / span}
                last, last_t = (ing["received"], ing["stored"]), now_t
                self.draw(render(status, gateway.clock(), self.header(gateway), rates,
                                 self.footer(status)))
                if self.opts.duration is not None and now_t - started >= self.opts.duration:
                    break
        finally:
            self.out.write("stopping: simulator, gateway, broker...\n")
            self.out.flush()
            self.run.stop()
            await asyncio.to_thread(self.sim_thread.join, 15)
            self.network.close()
            gateway.request_stop()
            await task
            await self.inbox.stop()
        status = gateway.status()
        delivered = ", ".join(f"{s['name']} {s['delivered']:.0f}" for s in status["sinks"])
        self.out.write(f"stopped. {status['ingest']['stored']:.0f} readings stored; delivered: "
                       f"{delivered}; file: {self.data_dir / 'readings.jsonl'}; the committee "
                       f"was told {self.inbox.count} time(s): {self.inbox.path}\n")
        return 0


def run_demo(opts: DemoOptions, out: IO[str] | None = None) -> int:
    out = out or sys.stdout
    demo = Demo(opts, out)
    handler = logging.FileHandler(demo.data_dir / "gateway.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)  # the view owns the terminal; the log goes to a file
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    if demo.embedded is not None:
        out.write(f"starting an embedded MQTT broker on {demo.host}:{demo.port}\n")
        demo.embedded.start()
    elif not wait_port(demo.host, demo.port, 5):
        out.write(f"gateway demo: no broker answers on {demo.host}:{demo.port}\n")
        return 1
    try:
        return asyncio.run(demo.main())
    finally:
        if demo.embedded is not None:
            demo.embedded.stop()
