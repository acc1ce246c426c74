#!/usr/bin/env bash
# Static security checks of terraform/ (the HCL, and the Kubernetes manifests of k8s/) with checkov,
# installed into its own virtualenv (terraform/.venv-checkov, git-ignored): checkov's pins clash with
# the project's dependencies.
#
#   terraform/checkov.sh            install on first use, then scan
#   terraform/checkov.sh --install  install only (make setup)
#
# Exit codes: 0 clean, 1 failed checks, 3 checkov could not be installed (no package index).
# Every accepted finding is skipped next to its resource: `#checkov:skip=CKV_...: reason` in HCL, a
# `checkov.io/skipN: CKV_K8S_...=reason` annotation in the Kubernetes manifests of terraform/k8s/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-checkov"
python="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/checkov" ]]; then
  echo "checkov.sh: installing checkov into $venv" >&2
  if ! { "$python" -m venv "$venv" && "$venv/bin/pip" install --quiet 'checkov>=3.2,<4'; } >&2; then
    echo "checkov.sh: could not install checkov (is a package index reachable?)" >&2
    rm -rf "$venv"
    exit 3
  fi
fi

[[ "${1:-}" == "--install" ]] && exit 0

cd "$here/.."
exec "$venv/bin/checkov" -d terraform --framework terraform kubernetes --skip-download --compact --quiet \
  --skip-path .venv-checkov --skip-path .terraform
