#!/usr/bin/env bash
# Install the headless browser the Swagger UI test drives (tests/browser/test_swagger.py).
#
# Playwright's own browser download is not reachable from here, so the test launches the
# distribution's Chromium at /usr/bin/chromium instead (executable_path=...). This script
# installs it from whatever apt mirror the machine is configured with.
#
# Idempotent: does nothing when /usr/bin/chromium exists; runs `apt-get update` only when
# something must be installed. Needs root (or sudo).
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    echo "install_browser: $CHROMIUM present ($("$CHROMIUM" --version 2>/dev/null || echo '?'))"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

echo "install_browser: installing chromium"
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation
if [ ! -x "$CHROMIUM" ]; then
    echo "install_browser: chromium installed but $CHROMIUM is missing" >&2
    exit 1
fi
echo "install_browser: $("$CHROMIUM" --version 2>/dev/null || echo chromium) in $(( $(date +%s) - start ))s"
