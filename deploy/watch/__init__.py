"""Post-deploy watch: judge the NEW pods of a rollout while the old ones still run; undo the
rollout when the release is at fault (docs/delivery.md, "The post-deploy watch").

- Which pods: the new ReplicaSet's pod-template-hash (`--new-pods auto` asks kubectl), or any
  label matcher (`--new 'app_kubernetes_io_version="1a2b3c"'`); the old pods are the rest of
  the namespace (`--old`), compared while both run.
- What: the new pods' HTTP 5xx share and p95 latency of POST /predict from BentoML's request
  metrics, beside the old pods'; and the alert rules we ship (configs/alerts.yml), scoped to
  the new pods. A rule already firing when the deploy started (a challenger rollback stored in
  the ledger, say) is not the release's fault and is not held against it.
- Counting, as Flagger does: a poll every `--interval` s for `--minutes`; `--threshold` failed
  polls FAIL the release: `kubectl rollout undo deployment/<name> -n <ns>`, exit 1 (3 if the
  undo failed).
- No data is never failure: a poll with too little traffic (`--min-requests` in `--window`),
  or where the old pods are as bad, or unanswered, is inconclusive. `--error-limit`
  unanswered polls in a row, or fewer than half the polls with a verdict at the end, make the
  watch INCONCLUSIVE: exit 2 and no undo (a person decides).
- PASS otherwise: exit 0.
"""
