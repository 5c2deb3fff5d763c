#!/usr/bin/env bash
# Deploy ONE already-pushed image, by digest, to an overlay: what the delivery workflow's
# deploy-dev and promote-prod jobs run (docs/delivery.md, "Deploy"). Never run by
# `make pipeline`: it needs the cluster (KUBECONFIG) and, for the watch, Prometheus.
#
#   bash tools/deploy.sh <overlay> <repository>@sha256:<digest>
#
# Env: GIT_SHA, MODEL_A, MODEL_B (the release's labels), PROMETHEUS_URL (empty: no watch),
#      WATCH_MINUTES (10), FRAUDSERVE_API_KEYS / FRAUDSERVE_LEDGER_URL (prod's Secret),
#      PYTHON (python3), REPORTS (reports).
# Steps, each guarding something:
#   1. kustomize edit set image fraudserve=<ref>    the overlay names exactly this digest
#   2. deploy.release stamp + check                  pods carry git sha + model tags; every
#                                                    fraudserve container renders that digest
#   3. namespace, then deploy.secrets               random keys/passwords made in the cluster
#   4. everything but the workloads, incl. the      schema migrated BEFORE new pods start
#      migration Job; wait for the Job
#   5. the workloads; rollout status                new pods ready (readiness: gated models,
#      (undo if never ready)                        writable ledger) or the rollout is undone
#   6. python -m deploy.watch on the new pods       5xx / p95 / rules vs the old pods; undo on
#                                                    failure; inconclusive is a warning
set -euo pipefail
cd "$(dirname "$0")/.."
overlay=${1:?overlay (dev, prod, rollouts)}
image=${2:?image <repository>@sha256:<digest>}
PY=${PYTHON:-python3}
REPORTS=${REPORTS:-reports}
# The overlay whose files name the image and the release: rollouts builds on prod's.
base=$overlay
if [ "$overlay" = rollouts ]; then base=prod; fi
dir=deploy/k8s/overlays/$base
mkdir -p "$REPORTS"
log() { echo "deploy: $*"; }

# 1. The image, by digest, with kustomize itself where it is installed (GitHub's runners).
if command -v kustomize >/dev/null; then
  (cd "$dir" && kustomize edit set image "fraudserve=$image")
  set_image=()
else
  set_image=(--set-image)   # the same images: entry, written by deploy.release
fi
# 2. The release on the pods, and a check of what will be applied.
"$PY" -m deploy.release stamp --overlay "$base" --image "$image" "${set_image[@]}" \
  --git-sha "${GIT_SHA:?}" --model-a "${MODEL_A:?}" --model-b "${MODEL_B:?}"
"$PY" -m deploy.release check --overlay "$overlay" --image "$image"
"$PY" -m deploy.render --overlay "$overlay" > "$REPORTS/rendered.yaml"
namespace=$("$PY" -m deploy.render --overlay "$overlay" --print-namespace)
log "overlay $overlay -> namespace $namespace, image $image"

# 3. The namespace, then the Secrets the overlay expects (never committed).
kubectl create namespace "$namespace" --dry-run=client -o yaml | kubectl apply -f -
case "$overlay" in
  dev) "$PY" -m deploy.secrets dev --namespace "$namespace" ;;
  *)   "$PY" -m deploy.secrets prod --namespace "$namespace" ;;
esac

# 4. Everything but the workloads (ConfigMap, Service, NetworkPolicy, monitors, database
#    objects, the migration Job), then wait for the migration.
"$PY" - "$REPORTS/rendered.yaml" "$REPORTS" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
workloads = {"Deployment", "Rollout"}
for name, keep in (("pre", lambda d: d["kind"] not in workloads),
                   ("workloads", lambda d: d["kind"] in workloads)):
    with open(f"{sys.argv[2]}/{name}.yaml", "w") as out:
        yaml.safe_dump_all([d for d in docs if keep(d)], out, sort_keys=False)
PY
kubectl delete job fraudserve-migrate -n "$namespace" --ignore-not-found --wait=true
kubectl apply -f "$REPORTS/pre.yaml"
log "waiting for the schema migration (python -m fraud.store.migrate)"
for _ in $(seq 1 180); do
  state=$(kubectl get job fraudserve-migrate -n "$namespace" \
    -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type} {end}')
  case " $state " in
    *" Complete "*) log "migration complete"; break ;;
    *" Failed "*)
      kubectl logs job/fraudserve-migrate -n "$namespace" --tail=50 || true
      echo "::error::the schema migration failed: nothing was rolled out"; exit 1 ;;
  esac
  sleep 5
done
if [[ " $state " != *" Complete "* ]]; then
  echo "::error::the schema migration did not finish in 15 minutes"; exit 1
fi

# 5. The workloads. The watch judges from this moment: whatever fired before is not this
#    release's doing.
since=$(date +%s)
kubectl apply -f "$REPORTS/workloads.yaml"
if ! kubectl get deployment fraudserve -n "$namespace" -o jsonpath='{.spec.replicas}' \
    | grep -qx 0; then
  if ! kubectl rollout status deployment/fraudserve -n "$namespace" --timeout=15m; then
    echo "::error::the new pods never became ready: rolling back"
    kubectl rollout undo deployment/fraudserve -n "$namespace"
    kubectl rollout status deployment/fraudserve -n "$namespace" --timeout=15m
    exit 1
  fi
else
  log "the Deployment is a template for Argo Rollouts: the canary analysis judges it in the cluster"
  exit 0
fi

# 6. The post-deploy watch on the new pods.
if [ -z "${PROMETHEUS_URL:-}" ]; then
  echo "::warning::PROMETHEUS_URL is not set: the release was not watched"; exit 0
fi
rc=0
"$PY" -m deploy.watch --prometheus "$PROMETHEUS_URL" --namespace "$namespace" \
  --new-pods auto --since "$since" --minutes "${WATCH_MINUTES:-10}" --interval 30 \
  --threshold 3 --report "$REPORTS/watch.json" || rc=$?
case $rc in
  0) log "watch passed" ;;
  2) echo "::warning::the watch was inconclusive (too little traffic or no Prometheus): not rolled back, a person decides" ;;
  *) echo "::error::the watch failed the release (exit $rc): rolled back"
     kubectl rollout status deployment/fraudserve -n "$namespace" --timeout=15m || true
     exit 1 ;;
esac
