"""Setting up a paho-mqtt client from the config: credentials and TLS.

Shared by the MQTT source and the upstream MQTT sink, which otherwise know
nothing of each other.
"""

from __future__ import annotations

import logging
import ssl
import sys

import paho.mqtt.client as mqtt

from gateway.config.schema import TlsConfig
from gateway.config.validate import Secret


def configure(client: mqtt.Client, username: str | None, password: Secret | None,
              tls: TlsConfig | None) -> None:
    """Apply user name/password and TLS settings to a paho client."""
    if username is not None:
        client.username_pw_set(username, str(password) if password else None)
    if tls is not None:
        client.tls_set(ca_certs=tls.ca_file, certfile=tls.cert_file, keyfile=tls.key_file,
                       cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        if tls.insecure:
            client.tls_insecure_set(True)


def log_connect_failure(log: logging.Logger, what: str, tls_key: str) -> str:
    """Log why paho could not connect to `what` and return the reason; call from on_connect_fail.

    paho gives on_connect_fail no cause, but calls it while handling the OSError of
    the attempt, so the exception is still at hand. Without this a broker that
    refuses our TLS settings would leave nothing at all in the log. `tls_key` names
    the config section to fix.
    """
    err = sys.exc_info()[1]
    if isinstance(err, ssl.SSLCertVerificationError):
        reason = (f"TLS: the broker's certificate was not accepted ({err.verify_message}); "
                  f"check {tls_key}.ca_file and that the certificate is for this host name")
    elif isinstance(err, ssl.SSLError):
        reason = f"TLS: {err.reason or err}; check {tls_key}"
    elif err is not None:
        reason = str(err) or type(err).__name__
    else:
        reason = "cause unknown"
    # A TLS failure will not go away by itself; a broker that is down may.
    level = logging.ERROR if isinstance(err, ssl.SSLError) else logging.WARNING
    log.log(level, "cannot connect to %s: %s; retrying", what, reason)
    return reason
