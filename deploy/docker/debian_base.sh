#!/usr/bin/env bash
# A Debian 12 base image made locally (for machines that reach Debian's mirror but no image
# registry): debootstrap's minimal system imported into Docker, about a minute and 200 MB.
#
#   deploy/docker/debian_base.sh [NAME]      (default ovserve-base:bookworm; root, debootstrap)
set -euo pipefail
NAME=${1:-ovserve-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if docker image inspect "$NAME" >/dev/null 2>&1; then
    echo "$NAME exists"; exit 0
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase bookworm "$root" "$MIRROR" >/dev/null
tar -C "$root" -c . | docker import - "$NAME"
echo "imported $NAME"
