#!/usr/bin/env bash
# System packages the integration tests start for real: Mosquitto, InfluxDB 1.x,
# VictoriaMetrics (InfluxDB v2 write endpoint); socat links two ptys for the Modbus RTU
# serial test; Chromium (the dashboard's browser test, driven by Playwright; no
# `playwright install`) with a CJK font for the Chinese labels; Node.js and the
# independent peers in tests/peers (node-opcua, modbus-serial, jsmodbus; Eclipse Tahu's
# sparkplug-client and sparkplug-payload), pinned by its package-lock.json; PostgreSQL
# (the operations database's tests start a private cluster). Installs only what is
# missing.
set -euo pipefail
need=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v influxd >/dev/null || need+=(influxdb)
command -v victoria-metrics >/dev/null || need+=(victoria-metrics)
command -v socat >/dev/null || need+=(socat)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -d /usr/share/fonts/truetype/wqy ] || need+=(fonts-wqy-zenhei)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# The packages' own services are not used: the tests start private instances.
for svc in mosquitto influxdb victoria-metrics postgresql; do
  (command -v service >/dev/null && service "$svc" stop) >/dev/null 2>&1 || true
done
# The independent OPC UA / Modbus servers the edge is tested against and the Sparkplug B
# peers: a test-only npm project, installed from its lock file. Offline-safe once
# installed: nothing is fetched while node_modules matches the lock.
peers="$(dirname "$0")/../tests/peers"
stamp="$peers/node_modules/.installed-lock.json"  # the lock node_modules was made from
if ! cmp -s "$peers/package-lock.json" "$stamp" 2>/dev/null; then
  (cd "$peers" && npm ci --omit=optional --no-audit --no-fund --loglevel=error)
  cp "$peers/package-lock.json" "$stamp"
fi
