#!/usr/bin/env bash
# Static security checks of terraform/ with checkov, installed into its own virtualenv
# (terraform/.venv-checkov, git-ignored): checkov's pins clash with the project's dependencies.
#
#   terraform/checkov.sh          install on first use, then scan
#
# Exit codes: 0 clean, 1 failed checks, 3 checkov could not be installed (no package index).
# Every accepted finding is skipped next to its resource: `#checkov:skip=CKV_...: reason`.
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

cd "$here/.."
exec "$venv/bin/checkov" -d terraform --framework terraform --skip-download --compact --quiet \
  --skip-path .venv-checkov --skip-path .terraform
