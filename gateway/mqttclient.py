"""Setting up a paho-mqtt client from the config: credentials and TLS.

Shared by the MQTT source and the upstream MQTT sink, which otherwise know
nothing of each other.
"""

from __future__ import annotations

import ssl

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
