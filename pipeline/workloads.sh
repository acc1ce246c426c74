#!/usr/bin/env bash
# The GKE workloads of one environment, after its `terraform apply` (pipeline/promote.yaml): the
# manifests of terraform/k8s/ with the environment's values and the commit's worker image, applied to
# the environment's cluster.
#
#   pipeline/workloads.sh ENV PROJECT REGION IMAGE     (IMAGE: the commit's, from cloudbuild.yaml)
set -euo pipefail

env="${1:?dev, staging or prod}"
project="${2:?PROJECT}"
region="${3:?REGION}"
image="${4:?IMAGE}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

export GOOGLE_IMPERSONATE_SERVICE_ACCOUNT="cmp-deployer@$project.iam.gserviceaccount.com"
gcloud container clusters get-credentials cmp --region "$region" --project "$project" \
  --impersonate-service-account="$GOOGLE_IMPERSONATE_SERVICE_ACCOUNT"
for manifest in "$here"/../terraform/k8s/*.yaml; do
  PROJECT_ID="$project" REGION="$region" ENVIRONMENT="$env" IMAGE="$image" \
    envsubst '${PROJECT_ID} ${REGION} ${ENVIRONMENT} ${IMAGE}' <"$manifest" | kubectl apply -f -
done
kubectl --namespace platform rollout status deployment/outbox-relay --timeout=300s
