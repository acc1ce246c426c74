#!/usr/bin/env bash
# The drift check of one environment: plan, from the artifact of the commit it runs, with
# -detailed-exitcode (pipeline/terraform.sh drift). Exit 0: no drift; 2: drift; other: could not plan.
#
#   pipeline/drift.sh ENV PROJECT        (ARTIFACTS, BILLING_ACCOUNT in the environment)
set -euo pipefail

env="${1:?dev, staging or prod}"
project="${2:?PROJECT}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

COMMIT="$(gcloud storage cat "gs://${ARTIFACTS:?}/current/$env")"
export COMMIT
dest="$(mktemp -d)"
"$here/artifact.sh" fetch "$COMMIT" "$dest"
exec "$dest/pipeline/terraform.sh" drift "$env" "$project"
