"""Long-running workers: containers on the GKE cluster (terraform/k8s/), processes in the local suite."""
