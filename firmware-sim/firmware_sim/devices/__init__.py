"""Simulated device kinds, by the `kind:` name a site file uses."""

from __future__ import annotations

import importlib

from firmware_sim.devices.base import ScenarioError, SimDevice

# kind -> "module:Class"; imported only when a site uses the kind.
KINDS: dict[str, str] = {
    "tasmota": "firmware_sim.devices.tasmota:TasmotaPlug",
    "shelly-plug": "firmware_sim.devices.shelly:ShellyPlusPlugS",
    "zigbee2mqtt": "firmware_sim.devices.zigbee2mqtt:Zigbee2MqttBridge",
    "esphome-heating": "firmware_sim.devices.esphome:EsphomeHeating",
    "glow": "firmware_sim.devices.glow:GlowMeter",
    "elm327": "firmware_sim.car.elm327:Elm327Device",
    "gps": "firmware_sim.car.gps:GpsDevice",
}

WORLDS: dict[str, str] = {
    "hall": "firmware_sim.hall:Hall",
    "car": "firmware_sim.car.vehicle:Vehicle",
}


def load_class(table: dict[str, str], name: str, what: str) -> type:
    target = table.get(name)
    if target is None:
        raise ScenarioError(f"unknown {what} {name!r}; known: {', '.join(sorted(table))}")
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def device_class(kind: str) -> type[SimDevice]:
    return load_class(KINDS, kind, "device kind")
