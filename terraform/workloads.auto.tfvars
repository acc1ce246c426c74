# The long-running pieces on the GKE cluster ("GCP Production Cluster" in the seed), the same in every
# environment. Auto-loaded next to environments/<env>.tfvars. Each name is the workload's Google service
# account id; namespace/ksa is the Kubernetes service account that impersonates it (README.md).
workloads = {
  # The outbox relay as a continuous worker (k8s/outbox-relay.yaml, workers/outbox_relay.py): publishes
  # a crashed request's events within seconds; the scheduled outbox_relay function stays the backstop.
  "outbox-relay" = {
    namespace       = "platform"
    ksa             = "outbox-relay"
    firestore       = true
    internal_topics = true
  }
  "analytics-pipeline" = {
    namespace = "analytics"
    ksa       = "analytics-pipeline"
    # Reads the Analytics Query API's pull subscriptions of the catalog.
    partners = ["analytics-query-api"]
  }
  "billing-worker" = {
    namespace = "billing"
    ksa       = "billing-worker"
    # Consumes nothing from the catalog today: list subscriptions (and topics it publishes) here.
    subscriptions = []
    topics        = []
  }
}
