"""One delivery through Apprise: a person's channel URL, a title and a body.

Apprise knows the services (e-mail, Telegram, Signal, ntfy, a JSON webhook,
Home Assistant ...); this module only turns its outcome into (ok, error text)
with no secret in the text: Apprise URLs carry tokens and passwords, and the
error is recorded in alerts.db and shown by `gateway alerts history`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

# Apprise logs each failure itself, with hosts and sometimes more: what it says is
# recorded per attempt instead (scrubbed), so its records stop at its own logger (Apprise
# captures them there for the result) and never reach the gateway's log.
logging.getLogger("apprise").propagate = False


@dataclass(frozen=True)
class Delivery:
    ok: bool
    service: str  # e.g. "json", "mailto": no host, no secret
    error: str = ""


def service_of(url: str) -> str:
    return urlsplit(url).scheme or "?"


def secrets_in(url: str) -> list[str]:
    """Parts of an Apprise URL that may be secret: user, password, path parts, query
    values (tokens hide in all of them, depending on the service)."""
    parts = urlsplit(url)
    found = [parts.username or "", parts.password or ""]
    found += [unquote(p) for p in parts.path.split("/")]
    found += [v for _, v in parse_qsl(parts.query)]
    return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    text = text.replace(url, f"{service_of(url)}://…")
    for secret in secrets_in(url):
        text = text.replace(secret, "****")
    return text


def send(url: str, title: str, body: str, timeout: float = 30.0) -> Delivery:
    import apprise

    service = service_of(url)
    sender = apprise.Apprise()
    if not sender.add(url):
        return Delivery(False, service, f"Apprise cannot read this {service}:// URL")
    result = sender.notify(body=body, title=title, timeout=timeout)
    if bool(result):
        return Delivery(True, service)
    said = [entry.message for r in result.results for attempt in r.attempts
            for entry in attempt.logs if entry.level in ("WARNING", "ERROR", "CRITICAL")]
    error = "; ".join(dict.fromkeys(said)) or f"not delivered ({result.status.name})"
    return Delivery(False, service, scrub(error, url)[:500])
