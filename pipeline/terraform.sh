#!/usr/bin/env bash
# Terraform for one environment, from an unpacked artifact (pipeline/artifact.sh), as that
# environment's deployer (bootstrap/: cmp-deployer@PROJECT, impersonated; the state in PROJECT-tfstate).
#
#   pipeline/terraform.sh plan  ENV PROJECT   plan; the plan's changes kept as gs://$ARTIFACTS/COMMIT/ENV.changes.json
#   pipeline/terraform.sh apply ENV PROJECT   re-plan, refuse unless the changes are the approved ones and
#                                             the previous environment runs this commit; apply; record it
#   pipeline/terraform.sh drift ENV PROJECT   plan -detailed-exitcode against the commit ENV runs: exit 2 on drift
#
# Needs: terraform, gcloud, python3; ARTIFACTS (bucket), COMMIT, BILLING_ACCOUNT in the environment.
set -euo pipefail

action="${1:?plan, apply or drift}"
env="${2:?dev, staging or prod}"
project="${3:?PROJECT}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Promotion order: an environment runs only a commit the previous one already runs.
declare -A previous=([dev]="" [staging]=dev [prod]=staging)
[[ -v "previous[$env]" ]] || { echo "terraform.sh: unknown environment $env" >&2; exit 2; }

export TF_IN_AUTOMATION=1
export TF_VAR_project_id="$project"
export TF_VAR_billing_account="${BILLING_ACCOUNT:?}"
export GOOGLE_IMPERSONATE_SERVICE_ACCOUNT="cmp-deployer@$project.iam.gserviceaccount.com"
store="gs://${ARTIFACTS:?}"

cd "$here/../terraform"
terraform init -input=false -reconfigure \
  -backend-config="bucket=$project-tfstate" -backend-config="prefix=cmp/$env"

# The approved thing is the list of (resource, actions) a plan would change.
changes() {
  terraform show -json "$1" | python3 -c '
import json, sys
plan = json.load(sys.stdin)
print(json.dumps(sorted([c["address"], c["change"]["actions"]] for c in plan.get("resource_changes", [])
                        if c["change"]["actions"] != ["no-op"]), indent=1))'
}

case "$action" in
  plan)
    terraform plan -input=false -var-file="environments/$env.tfvars" -out="$env.tfplan"
    changes "$env.tfplan" >"$env.changes.json"
    gcloud storage cp "$env.changes.json" "$store/${COMMIT:?}/$env.changes.json"
    ;;
  apply)
    before="${previous[$env]}"
    if [[ -n "$before" ]]; then
      running="$(gcloud storage cat "$store/current/$before" 2>/dev/null || true)"
      [[ "$running" == "${COMMIT:?}" ]] || {
        echo "terraform.sh: $before runs ${running:-nothing}, not $COMMIT: promote it there first" >&2
        exit 3
      }
    fi
    terraform plan -input=false -var-file="environments/$env.tfvars" -out="$env.tfplan"
    changes "$env.tfplan" >"$env.changes.now.json"
    gcloud storage cp "$store/${COMMIT:?}/$env.changes.json" "$env.changes.approved.json"
    if ! cmp -s "$env.changes.approved.json" "$env.changes.now.json"; then
      diff "$env.changes.approved.json" "$env.changes.now.json" >&2 || true
      echo "terraform.sh: the plan changed since it was approved: run the pipeline again" >&2
      exit 4
    fi
    terraform apply -input=false "$env.tfplan"
    printf '%s' "$COMMIT" | gcloud storage cp - "$store/current/$env"
    ;;
  drift)
    status=0
    terraform plan -input=false -lock=false -detailed-exitcode -var-file="environments/$env.tfvars" || status=$?
    case "$status" in
      0) echo "terraform.sh: $env matches its code" ;;
      2) echo "terraform.sh: $env has drifted from its code (see the plan above)" >&2 ;;
      *) echo "terraform.sh: the drift check of $env could not plan" >&2 ;;
    esac
    exit "$status"
    ;;
  *)
    echo "terraform.sh: unknown action $action" >&2
    exit 2
    ;;
esac
