#!/usr/bin/env bash
# Lints and schema-checks everything that runs Thespian outside cargo: the
# Dockerfile, the Compose stack, the Kubernetes manifests, the CI workflow,
# the justfile and the shell scripts; and checks that every relative link in
# the documentation leads somewhere. It installs nothing; the tools come from
#   pip install -r scripts/validate-requirements.txt
# plus kubectl (or kustomize) to render the Kubernetes overlays.
#
# With THESPIAN_BIN pointing at a built binary, it also runs `thespian check`
# on every config the Compose stack mounts and on the local ecosystem configs.
#
# Every check runs even after one fails; the last line counts them.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

# Newest Kubernetes schema that kubernetes-validate 1.37 ships.
KUBERNETES_VERSION="${KUBERNETES_VERSION:-1.37.0}"

passed=0
failed=0
failures=()
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# check NAME COMMAND...: runs COMMAND, shows its output only when it fails.
check() {
  local name="$1"
  shift
  if "$@" >"$scratch/out" 2>&1; then
    echo "ok    $name"
    passed=$((passed + 1))
  else
    echo "FAIL  $name"
    sed 's/^/        /' "$scratch/out"
    failed=$((failed + 1))
    failures+=("$name")
  fi
}

note() {
  echo "skip  $1"
}

# write_to FILE COMMAND...: runs COMMAND with its output in FILE.
write_to() {
  local file="$1"
  shift
  "$@" >"$file"
}

# --- Container image ---------------------------------------------------------
check "hadolint Dockerfile" hadolint Dockerfile

# --- Compose stack -----------------------------------------------------------
check "compose schema: instrumentation/docker-compose.yaml" \
  check-jsonschema --builtin-schema vendor.compose-spec instrumentation/docker-compose.yaml
check "compose: every mounted file exists" \
  python3 scripts/check_compose_mounts.py instrumentation/docker-compose.yaml
check "compose: every mounted file exists (EXTRA_TRACE_BACKEND=jaeger)" \
  env EXTRA_TRACE_BACKEND=jaeger python3 scripts/check_compose_mounts.py instrumentation/docker-compose.yaml

# --- Shell scripts -----------------------------------------------------------
check "shellcheck (.ci/run and scripts/*.sh)" shellcheck .ci/run scripts/*.sh

# --- YAML everywhere ---------------------------------------------------------
check "yamllint (all YAML in the repository)" yamllint --strict .

# --- CI workflow -------------------------------------------------------------
check "workflow schema: .github/workflows/*.yml" \
  check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

# --- Kubernetes --------------------------------------------------------------
check "kubernetes: base copies match example_configs/ecosystem and scripts/" \
  bash scripts/sync-kustomize-files.sh --check

if command -v kustomize >/dev/null 2>&1; then
  render=(kustomize build)
elif command -v kubectl >/dev/null 2>&1; then
  render=(kubectl kustomize)
else
  render=()
fi
if ((${#render[@]})); then
  for dir in deploy/kubernetes/base deploy/kubernetes/overlays/*/; do
    dir="${dir%/}"
    out="$scratch/$(echo "$dir" | tr / _).yaml"
    check "kustomize build $dir" write_to "$out" "${render[@]}" "$dir"
    if [[ -s "$out" ]]; then
      check "kubernetes-validate $dir (Kubernetes $KUBERNETES_VERSION)" \
        kubernetes-validate --strict --kubernetes-version "$KUBERNETES_VERSION" "$out"
    fi
  done
else
  # Without kustomize, validate each resource file on its own. The overlays'
  # patches cannot be checked this way.
  note "kustomize build: neither kustomize nor kubectl is on PATH; validating base resource files directly"
  mapfile -t manifests < <(find deploy/kubernetes/base -maxdepth 1 -name '*.yaml' ! -name kustomization.yaml | sort)
  check "kubernetes-validate deploy/kubernetes/base/*.yaml (Kubernetes $KUBERNETES_VERSION)" \
    kubernetes-validate --strict --kubernetes-version "$KUBERNETES_VERSION" "${manifests[@]}"
fi

# --- justfile ----------------------------------------------------------------
check "just --list" just --list
check "just --fmt --check" just --fmt --check --unstable

# --- Documentation -----------------------------------------------------------
# Every relative link and #anchor in the Markdown files (README.md, docs/, the
# READMEs beside the deployment files) must resolve. --offline leaves web links
# alone, so the check needs no network and fails only on the repository's own
# mistakes.
mapfile -t markdown < <(git ls-files --cached --others --exclude-standard '*.md')
check "lychee: relative links and anchors in ${#markdown[@]} Markdown files" \
  lychee --offline --include-fragments --no-progress "${markdown[@]}"

# --- Thespian configs --------------------------------------------------------
if [[ -n "${THESPIAN_BIN:-}" ]]; then
  # What Compose mounts: service, config file, scripts folder (host paths).
  while IFS=$'\t' read -r service config scripts; do
    check "thespian check: $service ($(realpath --relative-to="$repo" "$config"))" \
      env SCRIPTS_DIR="${scripts:-$repo/scripts}" "$THESPIAN_BIN" check "$config"
  done < <(python3 scripts/check_compose_mounts.py --thespian-configs instrumentation/docker-compose.yaml)
  for config in example_configs/ecosystem-local/*.jsonc example_configs/realistic/*.jsonc; do
    check "thespian check: $config" env SCRIPTS_DIR="$repo/scripts" "$THESPIAN_BIN" check "$config"
  done
else
  note "thespian check: set THESPIAN_BIN to a built thespian binary to check the ecosystem configs"
fi

echo
if ((failed)); then
  printf 'failed: %s\n' "${failures[@]}"
fi
echo "validate: $passed passed, $failed failed"
((failed == 0))
