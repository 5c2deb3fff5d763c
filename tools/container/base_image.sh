#!/usr/bin/env bash
# Build the local base image localhost/fraudserve-base:bookworm, used instead of
# a Docker Hub image when `bentoml containerize` runs on a machine that cannot
# reach Docker Hub (this project's dev machines and CI).
#
# What it is: a Debian 12 (bookworm) minbase rootfs made with debootstrap from
# the machine's own apt mirror, with python3 (3.11), python3-pip, python3-venv
# and ca-certificates, imported into podman's store with `podman import`.
# BentoML's v2 Dockerfile then adds its apt step, uv, a /app/.venv made by
# `uv venv --python 3.11` (which finds /usr/bin/python3.11) and the bento.
#
# Inside the rootfs it also:
#   - trusts the CAs found in /usr/local/share/ca-certificates on the host
#     (a TLS-intercepting proxy's CA, where there is one) and runs
#     update-ca-certificates, so apt/pip/uv inside builds can verify TLS;
#   - sets PIP_BREAK_SYSTEM_PACKAGES=1 (BentoML's Dockerfile pip-installs uv
#     into the system python, PEP 668 would refuse), SSL_CERT_FILE,
#     REQUESTS_CA_BUNDLE, PIP_CERT, UV_NATIVE_TLS=1, PATH;
#   - writes /etc/pip.conf with `cert = /etc/ssl/certs/ca-certificates.crt`.
#     The host's other pip settings (find-links / file:// extra indexes under
#     /opt, torch constraints in /etc/xdg/pip) point at local paths that do not
#     exist inside the build and are deliberately NOT copied: inside, pip and uv
#     use the default PyPI index;
#   - copies the host's Acquire::Check-Valid-Until=false if the host sets it
#     (needed when the apt mirror is a dated snapshot).
# This image is for local builds only: never push it (it may hold the host's
# interception CA).
#
# Idempotent: does nothing if the image already exists (`podman image exists`).
# Rebuild with: podman rmi localhost/fraudserve-base:bookworm && $0
# Installs nothing: needs podman and debootstrap (tools/container/install_deps.sh).
# Root is needed for debootstrap + chroot only. Run as root, it does everything itself; run as
# another user (a GitHub runner, a developer), it runs ITSELF under `sudo -n` with
# --rootfs-tar for those two steps, which writes the root filesystem as a tar on stdout, and
# imports that tar into the calling user's own podman store (where the user's
# `bentoml containerize --backend buildah` and `podman run` look for it). Without root or
# password-less sudo it fails, saying so. Takes ~70 s, ~200 MB.
#
# Env: FRAUDSERVE_BASE_IMAGE (default localhost/fraudserve-base:bookworm)
#      DEBIAN_MIRROR (default: the bookworm mirror configured for apt here)
#      CONTAINERS_CONF (default: tools/container/containers.conf)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IMAGE="${FRAUDSERVE_BASE_IMAGE:-localhost/fraudserve-base:bookworm}"
SUITE="bookworm"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$HERE/containers.conf}"

log() { echo "base_image: $*" >&2; }

for bin in podman debootstrap chroot tar; do
    if ! command -v "$bin" >/dev/null 2>&1; then
        log "missing '$bin': run tools/container/install_deps.sh first"
        exit 2
    fi
done

MODE="${1:-}"
if [ "$MODE" != "--rootfs-tar" ]; then
    if podman image exists "$IMAGE"; then
        log "$IMAGE already present, nothing to do (0s)"
        exit 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        if ! sudo -n true 2>/dev/null; then
            log "debootstrap and chroot need root: run as root, or where \`sudo -n\` works"
            exit 2
        fi
        log "building the root filesystem under sudo; importing it as $(id -un)"
        start=$(date +%s)
        sudo -n --preserve-env=DEBIAN_MIRROR bash "$HERE/base_image.sh" --rootfs-tar \
            | podman import --quiet \
                --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
                --change 'ENV LANG=C.UTF-8' \
                --change 'ENV PIP_BREAK_SYSTEM_PACKAGES=1' \
                --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
                --change 'ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt' \
                --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
                --change 'ENV UV_NATIVE_TLS=1' \
                --change 'CMD ["/bin/bash"]' \
                --message "fraudserve local base: debian $SUITE minbase + python3" \
                - "$IMAGE" >/dev/null
        size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
        log "built $IMAGE ($(( size / 1024 / 1024 )) MB) in $(( $(date +%s) - start ))s"
        exit 0
    fi
elif [ "$(id -u)" -ne 0 ]; then
    log "--rootfs-tar must run as root"
    exit 2
fi

# The Debian mirror apt already uses for $SUITE (deb822 *.sources or
# one-line *.list / sources.list).
detect_mirror() {
    local f uri=""
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk -v suite="$SUITE" 'BEGIN { RS=""; FS="\n" }
            {
              types=""; uris=""; suites=""; enabled="yes"
              for (i = 1; i <= NF; i++) {
                if ($i ~ /^[ \t]*#/) continue
                split($i, kv, ":"); key=tolower(kv[1]); val=substr($i, length(kv[1]) + 2)
                gsub(/^[ \t]+|[ \t]+$/, "", val)
                if (key == "types") types=val
                else if (key == "uris") uris=val
                else if (key == "suites") suites=val
                else if (key == "enabled") enabled=tolower(val)
              }
              if (enabled == "no" || (" " types " ") !~ / deb /) next
              if ((" " suites " ") ~ (" " suite " ")) { split(uris, u, " "); print u[1]; exit }
            }' "$f")
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        uri=$(sed -nE "s/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+)[[:space:]]+${SUITE}[[:space:]].*/\2/p" "$f" | head -n1)
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    echo "http://deb.debian.org/debian"
}

MIRROR="${DEBIAN_MIRROR:-$(detect_mirror)}"
log "building $IMAGE from $SUITE at $MIRROR"
start=$(date +%s)

ROOTFS="$(mktemp -d /var/tmp/fraudserve-base.XXXXXX)"
cleanup() {
    # debootstrap unmounts /proc and /sys itself; be safe before rm -rf.
    for m in proc sys dev/pts dev; do
        if mountpoint -q "$ROOTFS/$m" 2>/dev/null; then umount -l "$ROOTFS/$m" || true; fi
    done
    rm -rf --one-file-system "$ROOTFS"
}
trap cleanup EXIT

debootstrap --variant=minbase \
    --include=python3,python3-pip,python3-venv,ca-certificates \
    "$SUITE" "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 || {
        log "debootstrap failed; last lines of $ROOTFS.log:"; tail -n 30 "$ROOTFS.log" >&2; exit 1; }
rm -f "$ROOTFS.log"
log "debootstrap done after $(( $(date +%s) - start ))s"

# Trust the host's extra CAs (e.g. a TLS-intercepting proxy) inside the image.
shopt -s nullglob
extra_cas=(/usr/local/share/ca-certificates/*.crt)
shopt -u nullglob
if [ "${#extra_cas[@]}" -gt 0 ]; then
    mkdir -p "$ROOTFS/usr/local/share/ca-certificates"
    cp "${extra_cas[@]}" "$ROOTFS/usr/local/share/ca-certificates/"
    log "trusting ${#extra_cas[@]} extra CA(s) from /usr/local/share/ca-certificates"
fi
# (its rehash warns about the bundle file itself: harmless)
chroot "$ROOTFS" /usr/sbin/update-ca-certificates >/dev/null 2>&1

cat >"$ROOTFS/etc/pip.conf" <<'PIPCONF'
[global]
cert = /etc/ssl/certs/ca-certificates.crt
disable-pip-version-check = true
PIPCONF

if apt-config dump 2>/dev/null | grep -q '^Acquire::Check-Valid-Until "false"'; then
    echo 'Acquire::Check-Valid-Until "false";' >"$ROOTFS/etc/apt/apt.conf.d/99fraudserve-snapshot"
fi

# Slim down: apt caches and lists (BentoML's Dockerfile runs apt-get update).
chroot "$ROOTFS" apt-get clean >&2
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/tmp/* "$ROOTFS"/var/tmp/*

py=$(chroot "$ROOTFS" /usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
log "python in rootfs: $py"

if [ "$MODE" = "--rootfs-tar" ]; then   # the root half of a non-root run: the tar on stdout
    tar --numeric-owner -C "$ROOTFS" -c .
    exit 0
fi

tar --numeric-owner -C "$ROOTFS" -c . | podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_BREAK_SYSTEM_PACKAGES=1' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV UV_NATIVE_TLS=1' \
    --change 'CMD ["/bin/bash"]' \
    --message "fraudserve local base: debian $SUITE minbase + python$py" \
    - "$IMAGE" >/dev/null

size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
log "built $IMAGE (python $py, $(( size / 1024 / 1024 )) MB) in $(( $(date +%s) - start ))s"
