#!/usr/bin/env bash
# Make the local stand-in for the Dockerfiles' base image (python:3.11.x-slim-bookworm).
#
# No container registry is reachable from these machines, so the official image cannot be
# pulled. debootstrap builds Debian bookworm from the Debian mirror apt already uses, with
# Python 3.11 in a venv at /usr/local, so /usr/local/bin/python and pip sit where the
# official image has them. `images/build.sh` hands it to buildah with `--from`, which
# replaces the FROM line's image without editing the Dockerfile.
#
# TLS from inside a build passes this network's intercepting proxy, so the stand-in trusts
# the host's extra CA certificates: images built on it are for tests only, never pushed.
set -euo pipefail
cd "$(dirname "$0")/.."
source images/env.sh

if podman image exists "$MLOPS_BASE_STANDIN"; then
  echo "base stand-in $MLOPS_BASE_STANDIN exists"
  exit 0
fi
# The mirror apt already uses (deb822 "URIs:" or one-line "deb URL" entries), else Debian's.
mirror="$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list 2>/dev/null \
  | grep -v '^[[:space:]]*#' | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n1 | tr -d ' ' || true)"
mirror="${mirror:-http://deb.debian.org/debian}"
rootfs="$(mktemp -d /var/tmp/mlops-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrap bookworm from $mirror (2-3 minutes)"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$rootfs" "$mirror" >/dev/null
# The official image's layout: python, pip and the venv's site-packages under /usr/local.
chroot "$rootfs" python3 -m venv /usr/local
chroot "$rootfs" /usr/local/bin/python -m pip --version
cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
chroot "$rootfs" update-ca-certificates >/dev/null
# What the official slim image leaves out too: package caches, docs, man pages, locales.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/usr/share/doc "$rootfs"/usr/share/man "$rootfs"/usr/share/locale "$rootfs"/usr/share/info
tar -C "$rootfs" -c . | podman import \
  --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["python3"]' \
  - "$MLOPS_BASE_STANDIN" >/dev/null
podman run --rm --network host "$MLOPS_BASE_STANDIN" python --version
echo "base stand-in $MLOPS_BASE_STANDIN built"
