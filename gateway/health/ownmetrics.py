"""The gateway's own metrics: one name each, the same everywhere it is shown.

Every name is `gateway.<name>`, with exactly one dot, so each destination shows
the same words: Datadog `gateway.backlog_rows`, InfluxDB measurement `gateway`
with field `backlog_rows` (VictoriaMetrics `gateway_backlog_rows`), Prometheus
`/metrics` `gateway_backlog_rows`. Counters are forwarded as what they added
since the last report (type `count`) and shown on /metrics as their running
total, with Prometheus' `_total` suffix. Units are in the name where there is
one (`_seconds`, `_bytes`), as Prometheus asks.

The README's table of them is made from this list; a test keeps the code's
names and this list the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class OwnMetric:
    """One of the gateway's own metrics."""

    name: str
    kind: Literal["counter", "gauge"]
    labels: tuple[str, ...]
    help: str
    unit: str = ""

    @property
    def prometheus(self) -> str:
        base = self.name.replace(".", "_")
        return base + "_total" if self.kind == "counter" else base


def _c(name: str, help: str, *labels: str) -> OwnMetric:
    return OwnMetric(f"gateway.{name}", "counter", labels, help)


def _g(name: str, help: str, *labels: str, unit: str = "") -> OwnMetric:
    return OwnMetric(f"gateway.{name}", "gauge", labels, help, unit)


CATALOGUE: dict[str, OwnMetric] = {m.name: m for m in (
    # -- messages in: one outcome each, received = decoded + partly_decoded + ignored
    #    + retained + undecodable
    _c("received", "MQTT messages received"),
    _c("decoded", "messages read whole"),
    _c("partly_decoded", "messages that gave readings and also values that could not be read"),
    _c("ignored", "messages on topics a profile knows and reads nothing from"),
    _c("retained", "retained messages delivered on subscribing: kept as the last known "
                   "state, not stored"),
    _c("undecodable", "messages that gave no reading, by reason", "reason"),
    _c("field_problems", "values not read in partly decoded messages, by reason "
                         "(values, not messages)", "reason"),
    _c("device_time_rejected", "messages whose device clock was not believed (stamped on "
                               "receipt)", "device", "reason"),
    _c("readings_unstorable", "readings the store could not hold, taken out of their batch"),
    _c("stored", "readings committed to the store"),
    _c("component_deaths", "threads and tasks that died of an unexpected error (each is "
                           "logged with its traceback, then restarted or the gateway stops "
                           "with exit status 1)", "component"),
    _c("fanout_errors", "batches of committed readings a listener (latest values, "
                        "monitors...) failed on", "listener"),
    _c("serial_dropped", "lines a serial source did not hand on, by reason: too_long (over "
                         "max_line_bytes), cut (the port went mid-line), not_text (not in "
                         "its encoding)", "source", "reason"),
    _c("obd_requests", "requests an ELM327 source sent, by result: answered, no_data, "
                       "no_ecu (ignition off), bus_error, stopped, not_understood, "
                       "unreadable", "source", "result"),
    _c("gpio_dropped", "thermometer readings a gpio source did not hand on: crc (the "
                       "1-Wire read failed its check), power_on_value (85 °C, before the "
                       "first conversion)", "source", "input", "reason"),
    _c("check_runs", "runs of each local check, by result: ok, error (it raised), timeout "
                     "(it took longer than its timeout), skipped (the last run was still "
                     "going)", "check", "result"),
    _c("fanout_dropped", "committed readings a slow listener missed because its queue was "
                         "full (they are stored; the listener's view skipped them)",
       "listener"),
    # -- alerts
    _g("monitor_groups", "groups (devices, rooms ...) the monitors judge"),
    _g("monitor_points", "points the monitors' windows hold in memory"),
    _c("monitor_transitions", "changes of a monitor's status, by the status entered",
       "monitor", "status"),
    _c("notifications", "deliveries tried on a person's channel, by result", "person",
       "result"),
    # -- the broker
    _g("mqtt_connected", "1 while connected to the MQTT broker"),
    _c("mqtt_connects", "connections made to the MQTT broker"),
    _c("mqtt_disconnects", "connections to the MQTT broker lost"),
    _c("mqtt_session_lost", "reconnections to a broker that had forgotten the gateway's "
                            "session (messages published meanwhile are gone)", "reason"),
    _c("mqtt_redelivered", "messages the broker sent again (DUP flag)"),
    _c("mqtt_stale_acks", "acknowledgements not sent because their connection had ended"),
    _c("mqtt_subscribe_failures", "subscriptions the broker refused"),
    # -- ingest
    _g("ingest_queue", "messages received and not yet taken into a batch"),
    _g("ingest_batch_messages", "messages in the last committed batch"),
    _c("selfmetrics_dropped", "self-metric readings dropped while the store could not be "
                              "written"),
    # -- sinks
    _c("delivered", "readings a sink confirmed", "sink"),
    _c("dropped", "readings given up for a sink, by reason (dead letters and policies)",
       "sink", "reason"),
    _c("redelivered", "dead-lettered readings delivered on a second try", "sink"),
    _c("sink_failures", "failed sends that will be retried", "sink"),
    _c("sink_merged", "readings combined into a same-second point (Datadog)", "sink"),
    _g("sink_state", "1 for the sink's state (ok, idle, retrying, held, starting), 0 for "
                     "the others", "sink", "state"),
    _g("sink_last_send_seconds", "how long the last send took", "sink", unit="s"),
    _g("backlog_rows", "stored rows waiting for a sink", "sink"),
    _g("backlog_oldest_age_seconds", "age of the oldest reading waiting for a sink", "sink",
       unit="s"),
    # -- the store
    _g("store_bytes", "space the store takes: data pages and write-ahead log", unit="B"),
    _g("store_file_bytes", "size of the store's files", unit="B"),
    _g("store_budget_bytes", "space the store may take (max_bytes, less what min_free_bytes "
                             "keeps)", unit="B"),
    _g("store_fs_free_bytes", "free space on the store's file system", unit="B"),
    _g("store_writable", "1 while the store takes writes (0: disk full, locked...)"),
    _c("store_errors", "writes the store refused, by error", "error"),
    _c("store_purged", "rows deleted once every sink had them"),
    _c("store_compacted", "rows folded into rollups", "priority"),
    _c("store_evicted", "readings evicted to stay within the store's bounds", "reason",
       "priority"),
    _c("store_dead_letters_evicted", "dead letters evicted to stay within the bounds"),
    _c("store_recovered", "times a damaged store was moved aside and salvaged (alert on it)"),
    _c("store_salvage_lost", "readings a salvage could not read"),
    _c("store_timestamps_shifted", "readings stamped just after their series' last one "
                                   "because the clock went back"),
    # -- the process
    _g("process_max_rss_bytes", "peak resident memory of the gateway process", unit="B"),
)}


def metric(name: str) -> OwnMetric:
    """The catalogue's entry for `name`; KeyError names a metric nobody documented."""
    return CATALOGUE[name]
