#!/usr/bin/env bash
# Installs the validators that scripts/validate.sh needs and pip cannot
# provide, under target/ci-tools (so nothing outside the checkout changes and
# no service is started), and prints the folders to put on PATH:
#   - dclint, the Docker Compose linter, from npm (needs Node.js 20.19+);
#   - promtool, from the distribution's `prometheus` package: the package is
#     downloaded with apt-get and only unpacked, since installing it would
#     also start a Prometheus server. Skipped when promtool is already on PATH.
#
#   export PATH="$(bash scripts/install-ci-tools.sh):$PATH"
set -euo pipefail
cd "$(dirname "$0")/.."

DCLINT_VERSION=3.1.0
tools="$PWD/target/ci-tools"
mkdir -p "$tools"
paths=()

if [[ "$(cat "$tools/dclint.version" 2>/dev/null)" != "$DCLINT_VERSION" ]]; then
  npm install --prefix "$tools/npm" --no-save --no-audit --no-fund --silent \
    "dclint@$DCLINT_VERSION" >&2
  echo "$DCLINT_VERSION" >"$tools/dclint.version"
fi
paths+=("$tools/npm/node_modules/.bin")

if ! command -v promtool >/dev/null 2>&1 && [[ ! -x "$tools/prometheus/usr/bin/promtool" ]]; then
  sudo=()
  if ((EUID != 0)); then sudo=(sudo); fi
  "${sudo[@]}" apt-get update -qq >&2
  (cd "$tools" && apt-get download prometheus >&2)
  debs=("$tools"/prometheus_*.deb)
  dpkg-deb --extract "${debs[0]}" "$tools/prometheus"
  rm -f "$tools"/prometheus_*.deb
fi
paths+=("$tools/prometheus/usr/bin")

(
  IFS=:
  echo "${paths[*]}"
)
