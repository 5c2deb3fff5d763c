#!/usr/bin/env bash
# Install the tools that build and run the fraudserve OCI image without a
# Docker engine: buildah (builds the Dockerfile BentoML renders), podman (runs
# the image, and imports the local base image), runc (OCI runtime; crun fails on
# this kind of host with "cgroups in hybrid mode not supported"), debootstrap
# (makes the local Debian base image, see base_image.sh), and the usual podman
# helpers (uidmap, slirp4netns, fuse-overlayfs, netavark/aardvark-dns,
# containernetworking-plugins).
#
# Idempotent: installs only the packages that are missing, and runs
# `apt-get update` only when something must be installed. Needs root (or sudo).
# Uses whatever apt mirror the machine is configured with.
set -euo pipefail

# debian-archive-keyring: debootstrap verifies Debian's archive with it (already there on
# Debian; needed on Ubuntu, e.g. GitHub's ubuntu-24.04 runners, to debootstrap bookworm).
PKGS=(buildah podman runc debootstrap uidmap slirp4netns fuse-overlayfs
      containernetworking-plugins netavark aardvark-dns ca-certificates debian-archive-keyring)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install_deps: all present (${PKGS[*]})"
    exit 0
fi

echo "install_deps: installing ${missing[*]}"
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install_deps: done in $(( $(date +%s) - start ))s"
