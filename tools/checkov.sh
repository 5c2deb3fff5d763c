#!/usr/bin/env bash
# Checkov (Bridgecrew's IaC scanner, PyPI `checkov`), in a virtualenv of its own:
#   bash tools/checkov.sh [checkov arguments]      e.g. -d deploy --framework kubernetes
# Not in the project's .venv: checkov pins packaging<24 and the test tools need >=24 (pytest 9),
# so one resolver cannot satisfy both. The first call makes .venv/checkov (CHECKOV_VENV) with
# the pinned version below from PyPI; later calls reuse it.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=3.3.30
VENV=${CHECKOV_VENV:-.venv/checkov}
PY=${PY:-python3.11}
if [ ! -x "$VENV/bin/checkov" ] || [ "$("$VENV/bin/checkov" --version 2>/dev/null)" != "$VERSION" ]; then
  echo "checkov: installing checkov==$VERSION into $VENV" >&2
  "$PY" -m venv "$VENV"
  # Not the project's constraints (PIP_CONSTRAINT in CI): they pin packaging>=24.
  PIP_CONSTRAINT="" "$VENV/bin/pip" install -q --disable-pip-version-check \
    "checkov==$VERSION" >&2
fi
exec "$VENV/bin/checkov" "$@"
