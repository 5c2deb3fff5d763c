"""Post-deploy watch: judge a fresh rollout on the alert rules we ship; undo it on a breach.

The rule (also in docs/delivery.md):

- Every `--interval` seconds for `--minutes`, each watched rule of configs/alerts.yml
  (default: ChampionErrorRateHigh, ChallengerErrorRateHigh, FraudPredictionLatencyHigh,
  NoPredictions, ChallengerRolledBack) is evaluated on Prometheus, its `fraud_*` selectors
  narrowed by `--match` to this deployment's series.
- A rule is **breached** when its expression returns a series on every poll for its `hold`
  (the rule's own `for:` unless `--hold` is given): exactly when the alert would fire.
- **FAIL** at the first breach: `kubectl rollout undo deployment/<name> -n <namespace>`, exit 1.
- **PASS** when the window ends without a breach: exit 0.
- **INCONCLUSIVE** when Prometheus answered fewer than half of the polls: exit 2 and no undo
  (a monitoring outage is no evidence against the release; a person decides).
"""
