#!/usr/bin/env bash
# Docker for the image test: Debian's docker.io and debootstrap (installed when we are root and
# they are missing), and a running daemon (started here when none answers).
set -euo pipefail
if ! command -v docker >/dev/null || ! command -v debootstrap >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io debootstrap
    else
        echo "error: the image test needs docker and debootstrap (sudo apt-get install docker.io debootstrap)" >&2
        exit 1
    fi
fi
if ! docker info >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || { echo "error: no Docker daemon answers; start dockerd" >&2; exit 1; }
    nohup dockerd >/var/log/ovserve-dockerd.log 2>&1 &
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { echo "error: dockerd did not start; see /var/log/ovserve-dockerd.log" >&2; exit 1; }
fi
echo "docker: $(docker version --format '{{.Server.Version}}')"
