#!/usr/bin/env bash
# Install the gateway as a systemd service on Debian / Raspberry Pi OS, from a checkout:
#   sudo deploy/install.sh
# Run it again to update. It replaces what it ships and keeps what is yours:
#   replaced  /opt/edge-gateway                  this checkout and its virtual environment
#   replaced  /usr/local/bin/gateway             the `gateway` command
#   replaced  /etc/mosquitto/conf.d/gateway.conf Mosquitto: port 1883 for devices, login required
#   replaced  /etc/systemd/system/edge-gateway.service
#   kept      /etc/mosquitto/passwd              MQTT users (made with the user `gateway`)
#   kept      /etc/edge-gateway/gateway.yaml     the config (first from deploy/examples/gateway.yaml)
#   kept      /etc/edge-gateway/credentials/mqtt_password  the MQTT password of `gateway`
#   kept      /etc/systemd/system/edge-gateway.service.d/credentials.conf  loads the credentials
#             /var/lib/edge-gateway              the store and readings.jsonl, the service's own
# If `gateway` is missing from the password file, it is added with the password in
# mqtt_password (a random one, made when that file does not exist yet).
#
# For tests: GATEWAY_INSTALL_SKIP_SYSTEM=1 skips apt-get, useradd and systemctl (the test
# runs this script in a mount namespace in which the folders above are temporary ones).
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "run as root (sudo $0)" >&2; exit 1; }
SRC=$(cd "$(dirname "$0")/.." && pwd)
SKIP_SYSTEM=${GATEWAY_INSTALL_SKIP_SYSTEM:-}
SERVICE_USER=gateway  # the unit's User= and Group=
MQTT_USER=gateway     # the name deploy/examples/gateway.yaml logs in to Mosquitto with

APP=/opt/edge-gateway
ETC=/etc/edge-gateway
CONFIG=$ETC/gateway.yaml
CREDENTIALS=$ETC/credentials
MQTT_CREDENTIAL=$CREDENTIALS/mqtt_password
PASSWORD_FILE=/etc/mosquitto/passwd
UNIT_DIR=/etc/systemd/system
STATE=/var/lib/edge-gateway

say() { printf '%s\n' "$*"; }

if [ -z "$SKIP_SYSTEM" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends mosquitto mosquitto-clients python3-venv \
        rsync >/dev/null
    id "$SERVICE_USER" >/dev/null 2>&1 || useradd --system --user-group --no-create-home \
        --home-dir /var/lib/edge-gateway --shell /usr/sbin/nologin "$SERVICE_USER"
fi

# -- The program and the `gateway` command ---------------------------------------------
mkdir -p "$APP"
rsync -a --delete --exclude .venv --exclude data --exclude .git "$SRC/" "$APP/"
python3 -m venv "$APP/.venv"
"$APP/.venv/bin/pip" install -q --disable-pip-version-check -e "$APP"
install -D -m 0755 "$SRC/deploy/bin/gateway" /usr/local/bin/gateway

# -- Mosquitto: the drop-in (ours), the password file (yours once made) ------------------
install -D -m 0644 "$SRC/deploy/mosquitto/gateway.conf" /etc/mosquitto/conf.d/gateway.conf

# The gateway's own MQTT password: a systemd credential, readable by root and the service's
# group only. The group may read it so that `sudo -u gateway gateway ...` works by hand
# (see deploy/bin/gateway); systemd reads it as root for the service either way.
[ -d "$ETC" ] || install -d -m 0755 "$ETC"
if [ ! -d "$CREDENTIALS" ]; then
    install -d -m 0750 -o root -g "$SERVICE_USER" "$CREDENTIALS"
fi
new_password=
if [ ! -f "$MQTT_CREDENTIAL" ]; then
    (umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(24))' >"$MQTT_CREDENTIAL")
    chown "root:$SERVICE_USER" "$MQTT_CREDENTIAL"
    chmod 0640 "$MQTT_CREDENTIAL"
    new_password=yes
    say "made a password for the MQTT user $MQTT_USER in /etc/edge-gateway/credentials/mqtt_password"
fi

set_mqtt_password() {
    # mosquitto_passwd hashes it; given on stdin it stays out of the process list.
    local password
    password=$(cat "$MQTT_CREDENTIAL")
    printf '%s\n%s\n' "$password" "$password" | mosquitto_passwd "$@" "$PASSWORD_FILE" \
        "$MQTT_USER" >/dev/null
}
if [ ! -f "$PASSWORD_FILE" ]; then
    # Mosquitto reads it after dropping root for its own user, also on reload.
    (umask 077; set_mqtt_password -c)
    chown mosquitto:mosquitto "$PASSWORD_FILE"
    chmod 0600 "$PASSWORD_FILE"
    say "made /etc/mosquitto/passwd with the MQTT user $MQTT_USER"
elif [ -n "$new_password" ] || ! grep -q "^$MQTT_USER:" "$PASSWORD_FILE"; then
    # Yours: add or update only the gateway's line, and keep the owner and mode you gave it.
    owner=$(stat -c '%u:%g' "$PASSWORD_FILE")
    mode=$(stat -c '%a' "$PASSWORD_FILE")
    set_mqtt_password
    chown "$owner" "$PASSWORD_FILE"
    chmod "$mode" "$PASSWORD_FILE"
    say "set the password of the MQTT user $MQTT_USER in /etc/mosquitto/passwd"
fi

# -- The config (yours once made) --------------------------------------------------------
if [ ! -f "$CONFIG" ]; then
    name=$(hostname -s 2>/dev/null || true)
    [[ $name =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || name=edge-gateway
    tmp=$(mktemp)
    sed "s|^  name: edge-gateway |  name: $name |" "$SRC/deploy/examples/gateway.yaml" >"$tmp"
    # Readable by the service's group, not by everyone: a config may hold a secret.
    install -m 0640 -o root -g "$SERVICE_USER" "$tmp" "$CONFIG"
    rm -f "$tmp"
    say "wrote /etc/edge-gateway/gateway.yaml (gateway $name; readings to" \
        "/var/lib/edge-gateway/readings.jsonl): edit it, then: systemctl restart edge-gateway"
elif ! grep -q 'credential:mqtt_password' "$CONFIG"; then
    say "kept /etc/edge-gateway/gateway.yaml. Mosquitto now wants a login: its mqtt section" \
        "needs  username: $MQTT_USER  and  password: \${credential:mqtt_password}" \
        "(see $SRC/deploy/examples/gateway.yaml)"
fi

# -- systemd: the unit (ours), the drop-in (yours once made), the state directory --------
install -D -m 0644 "$SRC/deploy/systemd/edge-gateway.service" "$UNIT_DIR/edge-gateway.service"
if [ ! -f "$UNIT_DIR/edge-gateway.service.d/credentials.conf" ]; then
    install -D -m 0644 "$SRC/deploy/systemd/credentials.conf" \
        "$UNIT_DIR/edge-gateway.service.d/credentials.conf"
fi
install -d -m 0750 "$STATE"
chown -R "$SERVICE_USER:$SERVICE_USER" "$STATE"

if [ -z "$SKIP_SYSTEM" ]; then
    systemctl daemon-reload
    # A restart, not a reload: Mosquitto opens a new listener only when it starts.
    if ! systemctl restart mosquitto; then
        journalctl -u mosquitto -n 20 --no-pager >&2 || true
        echo "mosquitto did not start: see its log above" >&2
        exit 1
    fi
    systemctl enable edge-gateway
    systemctl restart edge-gateway  # a re-run's new code runs from now on
    systemctl --no-pager status edge-gateway | head -5 || true
fi
