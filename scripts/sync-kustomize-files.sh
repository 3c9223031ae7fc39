#!/usr/bin/env bash
# Keeps deploy/kubernetes/base/ in step with the sample ecosystem.
#
# kustomize reads no file outside its own folder, so the Kubernetes base holds
# copies of example_configs/ecosystem/*.jsonc (in configs/) and of every Rhai
# script those configs name (in scripts/).
#
#   scripts/sync-kustomize-files.sh          refresh the copies
#   scripts/sync-kustomize-files.sh --check  only report copies that differ
#                                            (exit 1), as scripts/validate.sh does
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
base="$repo/deploy/kubernetes/base"
check=false
case "${1:-}" in
  --check) check=true ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

# source:copy pairs, relative to the repository root.
pairs=()
for config in "$repo"/example_configs/ecosystem/*.jsonc; do
  name="$(basename "$config")"
  pairs+=("example_configs/ecosystem/$name:deploy/kubernetes/base/configs/$name")
  # Every `"script": "file.rhai"` the config names.
  while read -r script; do
    pairs+=("scripts/$script:deploy/kubernetes/base/scripts/$script")
  done < <(grep -oE '"script"[[:space:]]*:[[:space:]]*"[^"]+"' "$config" | sed -E 's/.*"([^"]+)"$/\1/')
done

status=0
for pair in "${pairs[@]}"; do
  src="${pair%%:*}" dst="${pair#*:}"
  if [[ ! -f "$repo/$src" ]]; then
    echo "missing: $src (named by the ecosystem configs)" >&2
    status=1
  elif $check; then
    if ! cmp -s "$repo/$src" "$repo/$dst"; then
      echo "out of date: $dst differs from $src" >&2
      status=1
    fi
  elif ! cmp -s "$repo/$src" "$repo/$dst"; then
    mkdir -p "$(dirname "$repo/$dst")"
    cp "$repo/$src" "$repo/$dst"
    echo "updated $dst"
  fi
done

# Each script copy must also be listed in the base's configMapGenerator.
for pair in "${pairs[@]}"; do
  dst="${pair#*:}"
  case "$dst" in
    deploy/kubernetes/base/scripts/*)
      if ! grep -qF -- "- ${dst#deploy/kubernetes/base/}" "$base/kustomization.yaml"; then
        echo "not in kustomization.yaml's thespian-scripts: ${dst#deploy/kubernetes/base/}" >&2
        status=1
      fi
      ;;
  esac
done

if $check && [[ $status -ne 0 ]]; then
  echo "run scripts/sync-kustomize-files.sh to refresh the copies" >&2
fi
exit "$status"
