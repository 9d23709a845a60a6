#!/bin/sh
# Install the tools bench/gateway.py drives: HAProxy and nginx (the anchors) and wrk (the load).
# Debian/Ubuntu; run as root (or with sudo). matplotlib (for the chart) comes from pip.
set -eu
if [ "$(id -u)" -ne 0 ]; then
    echo "run as root: sudo $0" >&2
    exit 1
fi
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y haproxy nginx wrk
# The packages enable system services; the bench starts its own processes on free loopback ports.
for svc in haproxy nginx; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc"; then
        systemctl stop "$svc" || true
    fi
done
haproxy -v | head -n 1
nginx -v
wrk --version 2>&1 | head -n 1 || true
