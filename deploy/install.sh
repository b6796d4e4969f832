#!/usr/bin/env bash
# Install the gateway as a systemd service on Debian / Raspberry Pi OS (run as root):
#   sudo deploy/install.sh
# - installs mosquitto (+ deploy/mosquitto/gateway.conf) and python3-venv
# - copies this checkout to /opt/edge-gateway and installs it into a venv there
# - creates the `gateway` user, /etc/edge-gateway/gateway.yaml (from the example,
#   if none exists yet; data_dir /var/lib/edge-gateway) and the systemd unit
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "run as root (sudo $0)" >&2; exit 1; }
SRC=$(cd "$(dirname "$0")/.." && pwd)
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends mosquitto python3-venv rsync >/dev/null
install -m 0644 "$SRC/deploy/mosquitto/gateway.conf" /etc/mosquitto/conf.d/gateway.conf
id gateway >/dev/null 2>&1 || useradd --system --home /var/lib/edge-gateway --shell /usr/sbin/nologin gateway
mkdir -p /opt/edge-gateway /etc/edge-gateway/credentials /var/lib/edge-gateway
rsync -a --delete --exclude .venv --exclude data --exclude .git "$SRC/" /opt/edge-gateway/
python3 -m venv /opt/edge-gateway/.venv
/opt/edge-gateway/.venv/bin/pip install -q --disable-pip-version-check -e /opt/edge-gateway
if [ ! -f /etc/edge-gateway/gateway.yaml ]; then
    sed 's|^  data_dir: .*|  data_dir: /var/lib/edge-gateway|' "$SRC/deploy/examples/hall.yaml" \
        > /etc/edge-gateway/gateway.yaml
    echo "wrote /etc/edge-gateway/gateway.yaml: edit it, then: systemctl restart edge-gateway"
fi
chown -R gateway:gateway /var/lib/edge-gateway
chmod 0700 /etc/edge-gateway/credentials
install -m 0644 "$SRC/deploy/systemd/edge-gateway.service" /etc/systemd/system/edge-gateway.service
systemctl daemon-reload
systemctl restart mosquitto
systemctl enable --now edge-gateway
systemctl --no-pager status edge-gateway | head -5
