#!/usr/bin/env bash
# The deployable artifact of one commit: the built functions and everything Terraform reads (terraform/,
# schemas/, build/) and the pipeline's scripts, in one tarball. Built once, uploaded once, and every
# environment is planned and applied from this same tarball (dev, then staging, then prod).
#
#   pipeline/artifact.sh pack BUILD_DIR OUT.tar.gz   pack (runs anywhere: tar and Python's build output)
#   pipeline/artifact.sh fetch COMMIT DEST_DIR       download gs://$ARTIFACTS/COMMIT/cmp.tar.gz, unpack
#   pipeline/artifact.sh upload COMMIT OUT.tar.gz    upload, refusing to replace an existing artifact
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
action="${1:?pack, fetch or upload}"

case "$action" in
  pack)
    build_dir="$(cd "${2:?BUILD_DIR}" && pwd)"
    out="${3:?OUT.tar.gz}"
    test -f "$build_dir/manifest.json" || { echo "artifact.sh: $build_dir has no manifest.json: run make build" >&2; exit 2; }
    # Sorted names, fixed owner and times, no gzip timestamp: the same inputs give the same tarball.
    # Local state, provider caches and plan files never travel.
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime='2000-01-01 00:00Z' \
      --exclude=.terraform --exclude=.venv-checkov --exclude='*.tfstate*' --exclude='*.tfplan' \
      --exclude='backend_override.tf' --exclude=__pycache__ \
      --transform="s|^${build_dir#/}|build|" \
      -cf - -C "$root" terraform schemas pipeline -C / "${build_dir#/}" | gzip -n >"$out"
    ;;
  upload)
    commit="${2:?COMMIT}"
    # --no-clobber: an artifact is written once; promotion reuses it, never rebuilds it.
    gcloud storage cp --no-clobber "${3:?OUT.tar.gz}" "gs://${ARTIFACTS:?}/$commit/cmp.tar.gz"
    ;;
  fetch)
    commit="${2:?COMMIT}"
    dest="${3:?DEST_DIR}"
    mkdir -p "$dest"
    gcloud storage cp "gs://${ARTIFACTS:?}/$commit/cmp.tar.gz" "$dest/cmp.tar.gz"
    tar -C "$dest" -xzf "$dest/cmp.tar.gz"
    ;;
  *)
    echo "artifact.sh: unknown action $action" >&2
    exit 2
    ;;
esac
