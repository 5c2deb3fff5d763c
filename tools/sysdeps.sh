#!/usr/bin/env bash
# Debian packages the full test suite needs (chromium, prometheus, postgresql, buildah...); installs only what is missing (needs root).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v promtool >/dev/null || need+=(prometheus)
# PostgreSQL server binaries for the ledger tests (the tests run their own server, never the
# system one: policy-rc.d below keeps the package from starting it).
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || need+=(postgresql)
# ShellCheck, which actionlint (tests/deploy) runs on the workflow's scripts when present.
command -v shellcheck >/dev/null || need+=(shellcheck)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "sysdeps: missing ${need[*]}; run as root: apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  echo "sysdeps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps the prometheus package from starting a system service.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi
# buildah/podman/runc/debootstrap for the container test (which builds its base image).
bash "$here/container/install_deps.sh"
echo "sysdeps: ok"
