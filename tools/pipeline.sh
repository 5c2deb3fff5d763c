#!/usr/bin/env bash
# The delivery pipeline's steps, the same ones .github/workflows/delivery.yml runs, up to the
# image: no push, no deploy. `make pipeline` runs them all in order; the workflow runs one
# step per call (`bash tools/pipeline.sh gate`), each exactly once (tests/deploy checks the two
# lists are equal). Deploying a pushed digest is tools/deploy.sh, in the workflow only.
#
#   RETRAIN=1 (default)  train fresh models; RETRAIN=0 trains only if the store lacks them
#   FULL_SUITE=1         also run the whole test suite (needs `make sysdeps`; long)
#   CONTAINERIZE_ARGS    passed to `bentoml containerize` (e.g. "--backend buildah -t x:y")
#   SKIP_IMAGE=1         stop after `bentoml build`
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
export BENTOML_DO_NOT_TRACK=true
ALL=(lint unit train gate suite build image)

step_lint() {
  "$BIN/ruff" check .
  "$BIN/python" -m deploy.sync --check   # deploy/k8s copies of configs/ are current
}

step_unit() {
  # Unit tests, and the deploy tests that need no server or database: manifests against their
  # schemas, workflows (actionlint), Checkov (tools/checkov.sh makes its own virtualenv).
  "$BIN/pytest" tests/unit tests/deploy -q -p no:cacheprovider -m "not service and not postgres"
}

step_train() {
  if [ "${RETRAIN:-1}" = 1 ]; then "$BIN/python" -m training
  else "$BIN/python" -m training --if-missing; fi
}

step_gate() {
  local rc=0
  "$BIN/pytest" gating -q -p no:cacheprovider || rc=$?
  summary=reports/gate/summary.md
  "$BIN/python" -m deploy.gate_summary reports/gate/gate_report.json > "$summary" || true
  if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then cat "$summary" >> "$GITHUB_STEP_SUMMARY"
  else cat "$summary"; fi
  return "$rc"
}

step_suite() {
  if [ "${FULL_SUITE:-0}" != 1 ]; then
    echo "pipeline: suite skipped (FULL_SUITE=1 runs it)"; return 0
  fi
  if [ "$(id -u)" = 0 ]; then bash tools/sysdeps.sh; else sudo -n bash tools/sysdeps.sh; fi
  "$BIN/pytest" -p no:cacheprovider
}

step_build() {
  "$BIN/python" -m gating.build   # bentoml build, gated tags pinned -> reports/build/bento_tag.txt
}

step_image() {
  if [ "${SKIP_IMAGE:-0}" = 1 ]; then echo "pipeline: image skipped (SKIP_IMAGE=1)"; return 0; fi
  # shellcheck disable=SC2086  # CONTAINERIZE_ARGS is a list of arguments
  "$BIN/bentoml" containerize "$(cat reports/build/bento_tag.txt)" ${CONTAINERIZE_ARGS:-}
}

run() {
  local started=$SECONDS
  echo "=== pipeline: $1"
  "step_$1"
  echo "=== pipeline: $1 ok ($((SECONDS - started)) s)"
}

if [ $# -eq 0 ]; then set -- "${ALL[@]}"; fi
for name in "$@"; do
  if ! declare -F "step_$name" >/dev/null; then
    echo "pipeline: unknown step '$name' (steps: ${ALL[*]})" >&2; exit 2
  fi
done
total=$SECONDS
for name in "$@"; do run "$name"; done
echo "=== pipeline: $* passed in $((SECONDS - total)) s"
